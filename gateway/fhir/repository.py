"""The store as one caller may use it: every interaction passes the caller's guard first.

Interactions never touch `Store` directly; they get a `Repository` bound to the request's
`AccessContext`. The guard decides (scopes, consent) and records (audit); the default guard
allows everything and is what internal components and the open embedded mode use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn, Protocol

from sqlalchemy import Connection

from gateway.auth.context import AccessContext
from gateway.consent.agreements import SOURCE_ORGANIZATION_TAG_SYSTEM
from gateway.fhir.errors import unauthorized
from gateway.fhir.patient_context import PatientContext
from gateway.logging import get_logger
from gateway.store.api import Store, StoredResource, UnitOfWork
from gateway.store.search.query import SearchQuery

log = get_logger("gateway.auth")

VersionRef = tuple[str, str, int]  # (type, id, version): one stored version, named without its content
# Reads the named versions' content (exactly those versions), parallel to the refs; None when absent.
LoadVersions = Callable[[list[VersionRef]], list[StoredResource | None]]
Candidate = StoredResource | VersionRef  # a row to decide: with its content, or named only


def no_loading(refs: list[VersionRef]) -> list[StoredResource | None]:
    """The `LoadVersions` of rows that all come with their content: never called."""
    raise AssertionError("every row was given with its content")


@dataclass(frozen=True)
class ClientCheck:
    """That the caller's client is still enabled, to be asked inside the request's own transaction.

    Asked once per request, before anything is audited or answered: folded into the consent
    guard's policy-inputs statement when the request reads one, else as a statement of its own.
    """

    client_id: str
    enabled: Callable[[Connection, str], bool]

    def verify(self, conn: Connection) -> None:
        if not self.enabled(conn, self.client_id):
            self.refuse()

    def refuse(self) -> NoReturn:
        log.info("auth.client_disabled", client_id=self.client_id)
        raise unauthorized("the access token is not valid")


class Guard(Protocol):
    def allow(self, access: AccessContext, interaction: str, rtype: str) -> None:
        """Raise FhirError (403) when the caller may not perform `interaction` on `rtype`."""

    def visible(
        self,
        access: AccessContext,
        uow: UnitOfWork,
        rows: list[StoredResource],
        *,
        interaction: str = "read",
        query: str | None = None,
        client: ClientCheck | None = None,
    ) -> list[StoredResource]:
        """The subset of `rows` the caller may see (each decision audited as `interaction`).

        `client`, when given, is verified first (before anything is audited), or the call raises.
        """
        ...

    def count_visible(
        self,
        access: AccessContext,
        uow: UnitOfWork,
        rows: Sequence[Candidate],
        load: LoadVersions,
        *,
        client: ClientCheck | None = None,
    ) -> list[bool]:
        """Which rows the caller may see, for a count (not a disclosure: nothing is audited).

        A row named by reference has its content read through `load` only when a decision needs it.
        `client` as for `visible`.
        """
        ...

    def record_writes(self, access: AccessContext, written: list[StoredResource]) -> None:
        """Audit committed writes."""


class OpenGuard:
    """No restriction: for internal use and for deployments that run without auth."""

    def allow(self, access: AccessContext, interaction: str, rtype: str) -> None:
        return None

    def visible(
        self,
        access: AccessContext,
        uow: UnitOfWork,
        rows: list[StoredResource],
        *,
        interaction: str = "read",
        query: str | None = None,
        client: ClientCheck | None = None,
    ) -> list[StoredResource]:
        if client is not None:
            client.verify(uow.conn)
        return rows

    def count_visible(
        self,
        access: AccessContext,
        uow: UnitOfWork,
        rows: Sequence[Candidate],
        load: LoadVersions,
        *,
        client: ClientCheck | None = None,
    ) -> list[bool]:
        if client is not None:
            client.verify(uow.conn)
        return [True] * len(rows)  # as `visible`: everything, tombstones included

    def record_writes(self, access: AccessContext, written: list[StoredResource]) -> None:
        return None


def stamp_source_organization(res: dict[str, Any], organization: str) -> dict[str, Any]:
    """Tag what a client writes with the client's organisation (its source, for sharing agreements).

    A client cannot claim another organisation: any existing source-organisation tag is replaced.
    """
    org_id = organization.split("/")[-1]
    meta = dict(res.get("meta") or {})
    tags = [t for t in meta.get("tag", []) if t.get("system") != SOURCE_ORGANIZATION_TAG_SYSTEM]
    meta["tag"] = [*tags, {"system": SOURCE_ORGANIZATION_TAG_SYSTEM, "code": org_id}]
    return {**res, "meta": meta}


class Repository:
    def __init__(
        self,
        store: Store,
        access: AccessContext,
        guard: Guard | None = None,
        *,
        client: ClientCheck | None = None,
    ) -> None:
        """`client`: the check that the caller's client is still enabled, left to this repository:
        asked once, inside the request's first transaction (a refusal answers 401). A read asks it
        with its first consent decision (one statement with the policy inputs), or on its own at
        the end of the transaction, before anything is answered; a write asks it first."""
        self.store = store
        self.access = access
        self.guard: Guard = guard or OpenGuard()
        self.patient_context = PatientContext(access) if access.patient is not None else None
        self._client = client

    def _take_client(self) -> ClientCheck | None:
        """The pending client check, handed to whoever asks it now (once per request)."""
        client, self._client = self._client, None
        return client

    def _check_client(self, uow: UnitOfWork) -> None:
        client = self._take_client()
        if client is not None:
            client.verify(uow.conn)

    def allow(self, interaction: str, rtype: str) -> None:
        self.guard.allow(self.access, interaction, rtype)

    @property
    def is_open(self) -> bool:
        """True when nothing is hidden from this caller (internal work, or no guard configured)."""
        if self.patient_context is not None:
            return False
        return self.access.is_system or isinstance(self.guard, OpenGuard)

    def narrow(self, uow: UnitOfWork, q: SearchQuery) -> SearchQuery:
        """The query as far as the caller's scopes reach (the patient context, when there is one)."""
        return q if self.patient_context is None else self.patient_context.narrow(uow, q)

    def visible(
        self, uow: UnitOfWork, rows: list[StoredResource], *, interaction: str = "read", query: str | None = None
    ) -> list[StoredResource]:
        if self.patient_context is not None:  # outside the patient context is as good as missing
            rows = self.patient_context.filter(uow, rows, interaction)
        client = self._take_client()
        if client is None:  # the common internal case; guards written before `client` keep working
            return self.guard.visible(self.access, uow, rows, interaction=interaction, query=query)
        return self.guard.visible(self.access, uow, rows, interaction=interaction, query=query, client=client)

    def expect_patients(self, uow: UnitOfWork, patient_ids: Iterable[str]) -> None:
        """Tell the guard (when it takes hints) whose data this transaction will decide about, so
        it reads their policy inputs in one go (see `ConsentGuard.expect_patients`)."""
        expect = getattr(self.guard, "expect_patients", None)
        if expect is not None:
            expect(uow, patient_ids)

    def check_update(self, uow: UnitOfWork, rtype: str, rid: str) -> None:
        """Before a PUT by id: raise FhirError when the caller may not update that id (a `patient/`
        scope updates only live resources in its context, see `gateway.fhir.patient_context`)."""
        if self.patient_context is not None:
            self.patient_context.check_update_target(uow, rtype, rid)

    def count_visible(self, uow: UnitOfWork, rows: Sequence[Candidate], load: LoadVersions) -> list[bool]:
        """Which rows this caller may see, for a total (see `Guard.count_visible`)."""
        if self.patient_context is None:
            return self.guard.count_visible(self.access, uow, rows, load, client=self._take_client())
        # The patient context reads every row's content: load what is named only, in one go.
        named = [row for row in rows if not isinstance(row, StoredResource)]
        loaded = iter(load(named) if named else [])
        full = [row if isinstance(row, StoredResource) else next(loaded) for row in rows]
        present = [row for row in full if row is not None]
        inside = self.patient_context.filter(uow, present, "count")
        decided = self.guard.count_visible(self.access, uow, inside, load, client=self._take_client())
        shown = {id(row) for row, ok in zip(inside, decided, strict=True) if ok}
        return [row is not None and id(row) in shown for row in full]

    def may_write(self, uow: UnitOfWork, rtype: str, rid: str, interaction: str) -> bool:
        """False when `rtype/rid` exists but this caller may not see it.

        A write must neither change nor reveal what a read would hide, so an update or delete
        only reaches resources the caller may see. The check itself is not a disclosure (decided
        as a count); a refusal is audited as the refused `interaction`.
        """
        if self.is_open:
            return True
        current = uow.get(rtype, rid)
        if current is None or current.content is None:
            return True  # missing or deleted: nothing to hide
        if self.visible(uow, [current], interaction="count"):
            return True
        self.visible(uow, [current], interaction=interaction)  # records the refusal
        return False

    @contextmanager
    def writer(self) -> Iterator[UnitOfWork]:
        organization = self.access.organization
        with self.store.writer() as uow:
            self._check_client(uow)
            if organization and not self.access.is_system:
                uow.prepare = lambda res: stamp_source_organization(res, organization)
            yield uow
            if self.patient_context is not None:
                uow.flush()
                self.patient_context.check_writes(uow, uow.written)  # raises: nothing is committed
        if uow.written:
            self.guard.record_writes(self.access, uow.written)

    @contextmanager
    def reader(self) -> Iterator[UnitOfWork]:
        with self.store.reader() as uow:
            try:
                yield uow
            finally:
                self._check_client(uow)  # when no consent decision asked it: before anything is answered
