"""What the consent engine decides with, read from the store in one statement per page.

For the Patients governing a page of resources: their current Patient records (opt-out flag),
their Consents, the (id, version) of every stored sharing agreement, the client-registry
generation, and (when asked) whether the requesting client is still enabled. Versions and
content come from the same statement, so the versions are an exact generation of the inputs:
the decision cache keys on them (`gateway.consent.decision_cache`).
JSON is parsed only when a decision has to be made (a cache miss).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import (
    Integer,
    String,
    Text,
    and_,
    any_,
    bindparam,
    case,
    false,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql import Select
from sqlalchemy.sql.elements import BindParameter

from gateway.auth.clients import CLIENT_GENERATION_KEY
from gateway.consent.agreements import AGREEMENT_CODE, AGREEMENT_CODE_SYSTEM, Agreement, AgreementError, parse_agreement
from gateway.consent.consents import is_class_level
from gateway.consent.decision_cache import PatientState
from gateway.logging import get_logger
from gateway.store.api import UnitOfWork
from gateway.store.id_lists import in_json, json_list
from gateway.store.inline import inline
from gateway.store.schema import auth_client, gateway_meta, resource, sp_reference, sp_token
from gateway.types import JSON

log = get_logger("gateway.access")

Versions = tuple[tuple[str, int], ...]  # (id, version) pairs, sorted


@dataclass
class _Stored:
    """One input row: its version and bytes; parsed on first use."""

    id: str
    version: int
    content: bytes
    _json: JSON | None = None

    def json(self) -> JSON:
        if self._json is None:
            self._json = orjson.loads(self.content)
        return self._json


@dataclass
class PolicyInputs:
    """The inputs of the decisions about one page (see the module docstring)."""

    patients: dict[str, _Stored] = field(default_factory=dict)
    consents: dict[str, list[_Stored]] = field(default_factory=dict)  # by Patient id, sorted by id
    agreement_versions: tuple[tuple[str, int], ...] = ()
    client_generation: str | None = None
    client_enabled: bool | None = None  # the asked client's registration (None when none was asked)

    def state(self, patient_id: str) -> PatientState:
        patient = self.patients.get(patient_id)
        consents = tuple((c.id, c.version) for c in self.consents.get(patient_id, ()))
        return (patient_id, patient.version if patient else None, consents)

    def patient_json(self, patient_ids: Iterable[str]) -> list[JSON]:
        return [self.patients[p].json() for p in patient_ids if p in self.patients]

    def consent_json(self, patient_ids: Iterable[str]) -> list[JSON]:
        return [c.json() for p in patient_ids for c in self.consents.get(p, ())]


def _statement(postgresql: bool) -> Select[Any]:
    """The one statement. On PostgreSQL the Patient ids are one array parameter (`= ANY(:pids)`), so
    its text never changes: psycopg prepares it after a few runs and PostgreSQL stops planning this
    five-branch UNION on every request (~0.9 ms of a search's wall time, ~0.4 once prepared); its
    fixed values are written inline (gateway/store/inline.py), so the prepared form is planned once,
    not on every execution (~0.3 ms a call, ~0.1 with the generic plan). On SQLite they are one
    JSON array (gateway/store/id_lists.py): an expanding IN list was rendered into the statement's
    text again on every request."""
    r, ref, tok, meta, client = resource.c, sp_reference.c, sp_token.c, gateway_meta.c, auth_client.c
    if postgresql:
        array: BindParameter[Any] = bindparam("pids", type_=ARRAY(String))
        patient_ids, consent_patients = r.res_id == any_(array), ref.target_id == any_(array)
    else:
        patient_ids, consent_patients = in_json("sqlite", r.res_id, "pids"), in_json("sqlite", ref.target_id, "pids")
    patients = select(
        inline("Patient").label("kind"),
        r.res_id.label("pid"),
        r.res_id,
        r.version_id,
        r.content,
    ).where(r.res_type == inline("Patient"), patient_ids, r.deleted == false())
    consents = (
        select(inline("Consent"), ref.target_id, r.res_id, r.version_id, r.content)
        .select_from(sp_reference.join(resource, and_(r.res_type == ref.res_type, r.res_id == ref.res_id)))
        .where(ref.res_type == inline("Consent"), ref.param == inline("patient"), ref.target_type == inline("Patient"))
        .where(consent_patients, r.deleted == false())
    )
    agreements = (
        select(inline("Basic"), null().cast(String), r.res_id, r.version_id, null().cast(Text))
        .select_from(sp_token.join(resource, and_(r.res_type == tok.res_type, r.res_id == tok.res_id)))
        .where(tok.res_type == inline("Basic"), tok.param == inline("code"), tok.code == inline(AGREEMENT_CODE))
        .where(tok.system == inline(AGREEMENT_CODE_SYSTEM), r.deleted == false())
    )
    clients = select(inline("meta"), null().cast(String), meta.key, literal_column("0", Integer), meta.value).where(
        meta.key == inline(CLIENT_GENERATION_KEY)
    )
    # The requesting client, when asked: whether it is still enabled (`Repository`'s check, folded in).
    caller = select(
        inline("client"),
        null().cast(String),
        client.client_id,
        literal_column("0", Integer),
        case((client.disabled == false(), inline("enabled")), else_=inline("disabled")),
    ).where(client.client_id == bindparam("client"))
    return union_all(patients, consents, agreements, clients, caller)  # type: ignore[return-value]


_STATEMENTS = {True: _statement(True), False: _statement(False)}


def load_inputs(uow: UnitOfWork, patient_ids: Iterable[str], *, client_id: str | None = None) -> PolicyInputs:
    """The inputs for these Patients, in one statement; with `client_id`, also whether that client
    is still enabled (`PolicyInputs.client_enabled`)."""
    ids = sorted(set(patient_ids))
    inputs = PolicyInputs()
    if client_id is not None:
        inputs.client_enabled = False  # unless its row says otherwise
    agreements: set[tuple[str, int]] = set()
    postgresql = uow.conn.dialect.name == "postgresql"
    pids: list[str] | str = (ids or ["\x00"]) if postgresql else json_list(ids)
    for row in uow.conn.execute(_STATEMENTS[postgresql], {"pids": pids, "client": client_id or ""}):
        kind = row[0]
        if kind == "Patient":
            inputs.patients[row.res_id] = _Stored(row.res_id, row.version_id, _bytes(row.content))
        elif kind == "Consent":
            inputs.consents.setdefault(row.pid, []).append(_Stored(row.res_id, row.version_id, _bytes(row.content)))
        elif kind == "Basic":
            agreements.add((row.res_id, row.version_id))
        elif kind == "client":
            inputs.client_enabled = client_id is not None and row.content == "enabled"
        else:
            inputs.client_generation = str(row.content)
    for found in inputs.consents.values():
        found.sort(key=lambda c: c.id)
    inputs.agreement_versions = tuple(sorted(agreements))
    return inputs


def _bytes(content: Any) -> bytes:
    return content.encode() if isinstance(content, str) else bytes(content)


class AgreementCache:
    """The parsed agreements, kept while the stored (id, version) set is unchanged. Thread-safe."""

    def __init__(self) -> None:
        self._cached: tuple[Versions, list[Agreement]] | None = None
        self._lock = threading.Lock()

    def get(
        self, uow: UnitOfWork, versions: tuple[tuple[str, int], ...]
    ) -> tuple[tuple[tuple[str, int], ...], list[Agreement]]:
        """(the versions actually parsed, the agreements): re-read only when `versions` changed.

        The versions returned are those of the content parsed (it may be newer than `versions`
        when an agreement changed in between), so a cache key built from them is exact.
        """
        with self._lock:
            cached = self._cached
        if cached is not None and cached[0] == versions:
            return cached
        parsed: list[Agreement] = []
        seen: list[tuple[str, int]] = []
        for stored in uow.fetch_many(("Basic", rid) for rid, _ in versions):
            seen.append((stored.id, stored.version_id))
            try:
                parsed.append(parse_agreement(stored.json()))
            except AgreementError:
                log.warning("agreement_unusable", resource_id=stored.id)  # fail closed: it admits nothing
        result = (tuple(sorted(seen)), parsed)
        with self._lock:
            self._cached = result
        return result


class ClassLevelMemo:
    """Whether each stored Consent version is class-level (`consents.is_class_level`). Thread-safe enough:
    a lost update only means computing an answer twice."""

    def __init__(self, limit: int = 100_000) -> None:
        self._known: dict[tuple[str, int], bool] = {}
        self._limit = limit

    def all_class_level(self, inputs: PolicyInputs, patient_ids: Iterable[str]) -> bool:
        for pid in patient_ids:
            for consent in inputs.consents.get(pid, ()):
                key = (consent.id, consent.version)
                known = self._known.get(key)
                if known is None:
                    if len(self._known) >= self._limit:
                        self._known.clear()
                    known = self._known[key] = is_class_level(consent.json())
                if not known:
                    return False
        return True
