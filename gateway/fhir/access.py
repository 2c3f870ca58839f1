"""The guard that enforces who may see what on every REST path: SMART scopes, then consent.

It is the concrete `Guard` behind `Repository`: the interaction is checked against the
caller's scopes, every resource leaving the gateway is decided by the one policy decision
point (`gateway.consent.PolicyDecisionPoint`), and each decision is audited (batched, off
the request path). A refused resource is dropped exactly as if it did not exist.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import structlog

from gateway.audit.events import audit_read, audit_search, audit_write
from gateway.audit.writer import AuditSink
from gateway.auth.context import AccessContext
from gateway.auth.scopes import allows
from gateway.consent.agreements import (
    AGREEMENT_CODE,
    AGREEMENT_CODE_SYSTEM,
    SOURCE_ORGANIZATION_TAG_SYSTEM,
    Agreement,
    AgreementError,
    parse_agreement,
)
from gateway.consent.decision import FilterResult
from gateway.consent.pdp import PolicyDecisionPoint
from gateway.fhir.errors import forbidden
from gateway.logging import get_logger
from gateway.store.api import Store, StoredResource, UnitOfWork
from gateway.store.schema import sp_reference, sp_token

log = get_logger("gateway.access")

_SCOPE_INTERACTION = {"history": "read", "vread": "read"}
_AGREEMENT_TTL = 30.0  # seconds; other processes' agreement changes are seen within this


def _now() -> datetime:
    return datetime.now(UTC)


class ConsentGuard:
    def __init__(
        self,
        store: Store,
        pdp: PolicyDecisionPoint | None = None,
        *,
        audit: AuditSink | None = None,
        on_obligations: Callable[[AccessContext, FilterResult], None] | None = None,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.store = store
        self.pdp = pdp or PolicyDecisionPoint()
        self.audit = audit
        self.on_obligations = on_obligations
        self.clock = clock
        self._agreements: list[Agreement] | None = None
        self._agreements_at = 0.0
        self._lock = threading.Lock()
        store.on_commit(self._invalidate)

    def _invalidate(self, written: list[StoredResource]) -> None:
        if any(w.type == "Basic" for w in written):
            self._agreements = None

    # -- Guard protocol ---------------------------------------------------------------------------

    def allow(self, access: AccessContext, interaction: str, rtype: str) -> None:
        if access.is_system:
            return
        wanted = _SCOPE_INTERACTION.get(interaction, interaction)
        if rtype == "*" or not allows(access.scopes, wanted, rtype):
            if rtype == "*" and any(allows(access.scopes, wanted, t) for t in ("Patient",)):
                return
            raise forbidden(f"the granted scopes do not allow {wanted} on {rtype}")

    def visible(
        self,
        access: AccessContext,
        uow: UnitOfWork,
        rows: list[StoredResource],
        *,
        interaction: str = "read",
        query: str | None = None,
    ) -> list[StoredResource]:
        if access.is_system or not rows:
            return rows
        live = [r for r in rows if r.content is not None]
        resources = [r.json() for r in live]
        patients: set[str] = set()
        for res in resources:
            patients |= self.pdp.patients_for(res)
        result = self.pdp.filter(
            access,
            resources,
            patient_consents=self._consents(uow, patients),
            patient_resources=[p.json() for p in uow.fetch_many(("Patient", pid) for pid in sorted(patients))],
            agreements=self._agreements_for(uow),
            now=self.clock(),
        )
        self._audit(access, live, result, interaction, query)
        if result.obligations and self.on_obligations is not None:
            self.on_obligations(access, result)
        return [row for row, dec in zip(live, result.decisions, strict=True) if dec.permit]

    def record_writes(self, access: AccessContext, written: list[StoredResource]) -> None:
        if self.audit is None:
            return
        recorded = self.clock()
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        for stored in written:
            patients = self.pdp.patients_for(stored.json()) if stored.content is not None else set()
            interaction = {"POST": "create", "PUT": "update", "DELETE": "delete"}.get(stored.method, "update")
            self.audit.record(
                audit_write(
                    event_id=str(uuid.uuid4()),
                    recorded=recorded,
                    ctx=access,
                    interaction=interaction,
                    resource_ref=stored.reference,
                    patient_ids=sorted(patients),
                    request_id=request_id,
                )
            )

    # -- inputs -----------------------------------------------------------------------------------

    def _consents(self, uow: UnitOfWork, patients: Iterable[str]) -> list[dict[str, Any]]:
        ids = sorted(patients)
        if not ids:
            return []
        ref = sp_reference.c
        consent_ids = uow.conn.execute(
            sp_reference.select()
            .with_only_columns(ref.res_id)
            .where(ref.res_type == "Consent", ref.param == "patient", ref.target_type == "Patient")
            .where(ref.target_id.in_(ids))
        ).scalars()
        return [c.json() for c in uow.fetch_many(("Consent", cid) for cid in set(consent_ids))]

    def _agreements_for(self, uow: UnitOfWork) -> list[Agreement]:
        with self._lock:
            fresh = time.monotonic() - self._agreements_at < _AGREEMENT_TTL
            if self._agreements is not None and fresh:
                return self._agreements
        tok = sp_token.c
        ids = uow.conn.execute(
            sp_token.select()
            .with_only_columns(tok.res_id)
            .where(tok.res_type == "Basic", tok.param == "code", tok.code == AGREEMENT_CODE)
            .where(tok.system == AGREEMENT_CODE_SYSTEM)
        ).scalars()
        agreements = []
        for stored in uow.fetch_many(("Basic", i) for i in set(ids)):
            try:
                agreements.append(parse_agreement(stored.json()))
            except AgreementError:
                log.warning("agreement_unusable", resource_id=stored.id)  # fail closed: it admits nothing
        with self._lock:
            self._agreements, self._agreements_at = agreements, time.monotonic()
        return agreements

    def _audit(
        self,
        access: AccessContext,
        rows: list[StoredResource],
        result: FilterResult,
        interaction: str,
        query: str | None,
    ) -> None:
        if self.audit is None or interaction == "count":  # counting a total is not a disclosure
            return
        recorded = self.clock()
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        if interaction == "search":
            self.audit.record(
                audit_search(
                    event_id=str(uuid.uuid4()),
                    recorded=recorded,
                    ctx=access,
                    query=query or "",
                    result=result,
                    request_id=request_id,
                )
            )
            return
        for row, dec in zip(rows, result.decisions, strict=True):
            self.audit.record(
                audit_read(
                    event_id=str(uuid.uuid4()),
                    recorded=recorded,
                    ctx=access,
                    resource_ref=row.reference,
                    decision=dec,
                    interaction=interaction,
                    request_id=request_id,
                )
            )


__all__ = ["ConsentGuard"]


def subscriber_visibility(guard: ConsentGuard, store: Store) -> Callable[[str, str, str], bool]:
    """Decide a notification with the subscriber's own context: the organisation that created it.

    Subscriptions written by a client carry that client's organisation as their source tag; one
    written by the gateway itself (no tag) is internal and may see everything.
    """

    def may_see(sub_id: str, res_type: str, res_id: str) -> bool:
        with store.reader() as uow:
            sub = uow.get("Subscription", sub_id)
            if sub is None or sub.content is None:
                return False
            tags = (sub.json().get("meta") or {}).get("tag", [])
            org = next((t.get("code") for t in tags if t.get("system") == SOURCE_ORGANIZATION_TAG_SYSTEM), None)
            if org is None:
                return True
            subscriber = AccessContext(
                client_id=f"subscription:{sub_id}",
                organization=f"Organization/{org}",
                scopes=frozenset({"system/*.rs"}),
            )
            focus = uow.get(res_type, res_id)
            if focus is None or focus.content is None:
                return False
            return bool(guard.visible(subscriber, uow, [focus], interaction="read"))

    return may_see
