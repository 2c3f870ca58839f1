"""The guard that enforces who may see what on every REST path: SMART scopes, then consent.

It is the concrete `Guard` behind `Repository`: the interaction is checked against the
caller's scopes, every resource leaving the gateway is decided by the one policy decision
point (`gateway.consent.PolicyDecisionPoint`), and each decision is audited (batched, off
the request path). A refused resource is dropped exactly as if it did not exist.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog

from gateway.audit.events import audit_read, audit_search, audit_write
from gateway.audit.writer import AuditSink
from gateway.auth.context import AccessContext
from gateway.auth.scopes import allows
from gateway.consent.agreements import source_organization
from gateway.consent.decision import Decision, FilterResult, distinct
from gateway.consent.decision_cache import DecisionCache, DecisionKey
from gateway.consent.facts import Facts
from gateway.consent.pdp import PolicyDecisionPoint
from gateway.fhir.errors import forbidden
from gateway.fhir.policy_inputs import AgreementCache, ClassLevelMemo, PolicyInputs, load_inputs
from gateway.fhir.repository import Candidate, ClientCheck, LoadVersions, VersionRef, no_loading
from gateway.logging import get_logger
from gateway.store.api import Store, StoredResource, UnitOfWork
from gateway.store.ids import new_id
from gateway.store.meta_secrets import meta_secret

log = get_logger("gateway.access")

_SCOPE_INTERACTION = {"history": "read", "vread": "read"}
_FACTS_LIMIT = 200_000  # stored versions whose facts are remembered
DECISION_NAMESPACE_KEY = "decision_namespace"  # its `gateway_meta` key


def _now() -> datetime:
    return datetime.now(UTC)


def _obligations(decisions: list[Decision]) -> frozenset[str]:
    """What the decisions oblige (a page shares a few decision objects: each looked at once)."""
    return frozenset().union(*(dec.obligations for dec in distinct(decisions)))


def _fill(have: list[StoredResource | None], refs: list[VersionRef], wanted: list[int], load: LoadVersions) -> None:
    """Read the content of the wanted rows that have none yet, in one call."""
    missing = [i for i in dict.fromkeys(wanted) if have[i] is None]
    if missing:
        for i, row in zip(missing, load([refs[i] for i in missing]), strict=True):
            have[i] = row


class ConsentGuard:
    """Scopes, then the PDP for every resource shown, then audit.

    A page is decided once per class of resources (`Facts`), and each class decision is looked
    up in `decisions` first (in-process, and Redis when configured): see
    `gateway.consent.decision_cache` for why a cached decision is never stale.
    """

    def __init__(
        self,
        store: Store,
        pdp: PolicyDecisionPoint | None = None,
        *,
        audit: AuditSink | None = None,
        on_obligations: Callable[[AccessContext, FilterResult], None] | None = None,
        clock: Callable[[], datetime] = _now,
        decisions: DecisionCache | None = None,
    ) -> None:
        self.store = store
        self.pdp = pdp or PolicyDecisionPoint()
        self.audit = audit
        self.on_obligations = on_obligations
        self.clock = clock
        self.decisions = decisions if decisions is not None else DecisionCache()
        self._agreements = AgreementCache()
        self._class_level = ClassLevelMemo()
        self._facts: dict[VersionRef, Facts] = {}
        self._classes: dict[Facts, Facts] = {}  # each class once, so rows group by identity
        self._decided_in: weakref.WeakKeyDictionary[
            UnitOfWork, tuple[tuple[str | None, ...], int, dict[VersionRef, Decision]]
        ] = weakref.WeakKeyDictionary()
        self._read_in: weakref.WeakKeyDictionary[UnitOfWork, tuple[frozenset[str], int, PolicyInputs]] = (
            weakref.WeakKeyDictionary()
        )
        self._expected: weakref.WeakKeyDictionary[UnitOfWork, frozenset[str]] = weakref.WeakKeyDictionary()
        self._policy = (self.pdp.policy.version, self.pdp.compartment.version)
        # This database's namespace for shared (Redis) decision keys; a stored id of an older
        # gateway (a UUID's hex) reads back as the same text.
        self._deployment = meta_secret(store, DECISION_NAMESPACE_KEY).hex()

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
        client: ClientCheck | None = None,
        shared_cache: bool = True,
    ) -> list[StoredResource]:
        if access.is_system or not rows:
            if client is not None:
                client.verify(uow.conn)
            return rows
        live = [r for r in rows if r.content is not None]
        decisions = self._decided(
            self._decide(
                access, uow, live, no_loading, client, remember=interaction == "count", shared_cache=shared_cache
            )
        )
        result = FilterResult(
            permitted=[],  # the guard works on stored rows; see `decisions`
            decisions=decisions,
            obligations=_obligations(decisions),
        )
        self._audit(access, live, result, interaction, query)
        if result.obligations and self.on_obligations is not None:
            self.on_obligations(access, result)
        return [row for row, dec in zip(live, decisions, strict=True) if dec.permit]

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
                    event_id=new_id(),
                    recorded=recorded,
                    ctx=access,
                    interaction=interaction,
                    resource_ref=stored.reference,
                    patient_ids=sorted(patients),
                    request_id=request_id,
                )
            )

    def expect_patients(self, uow: UnitOfWork, patient_ids: Iterable[str]) -> None:
        """A hint: this transaction will decide about these Patients' data, so the first read of
        the policy inputs reads theirs too (`$everything` decides its focus, then the linked record:
        one statement instead of two). Reading more inputs than a decision needs changes none."""
        self._expected[uow] = frozenset(patient_ids)

    # -- deciding ---------------------------------------------------------------------------------

    def count_visible(
        self,
        access: AccessContext,
        uow: UnitOfWork,
        rows: Sequence[Candidate],
        load: LoadVersions,
        *,
        client: ClientCheck | None = None,
    ) -> list[bool]:
        if access.is_system:
            if client is not None:
                client.verify(uow.conn)
            return [not isinstance(row, StoredResource) or row.content is not None for row in rows]
        decisions = self._decide(access, uow, rows, load, client, remember=True)
        made = [dec for dec in decisions if dec is not None]
        obligations = _obligations(made)
        if obligations and self.on_obligations is not None:
            self.on_obligations(access, FilterResult(permitted=[], decisions=made, obligations=obligations))
        return [dec is not None and dec.permit for dec in decisions]

    def decide(self, access: AccessContext, uow: UnitOfWork, rows: list[StoredResource]) -> list[Decision]:
        """One decision per row (parallel to `rows`, each with its content), each class decided or looked up once."""
        return self._decided(self._decide(access, uow, rows, no_loading))

    @staticmethod
    def _decided(decisions: list[Decision | None]) -> list[Decision]:
        return [dec for dec in decisions if dec is not None]

    def _decide(
        self,
        access: AccessContext,
        uow: UnitOfWork,
        rows: Sequence[Candidate],
        load: LoadVersions,
        client: ClientCheck | None = None,
        *,
        remember: bool = False,
        shared_cache: bool = True,
    ) -> list[Decision | None]:
        """A decision per row; None for a row that has no content (a tombstone, or a version gone).

        `client`, when given, is verified before anything is decided from the inputs: in the same
        statement as the policy inputs when they are read, else on its own.

        Rows are decided by class: a stored version's class (`Facts`) is remembered, so a row
        named by reference is read only when its class is new to this process or its class has to
        be decided afresh (a representative). Decisions are looked up in this transaction's memo
        (`_memo`) and, with `remember` (a count: its page, or a write's refusal, decides the same
        versions next), kept there; a page or a record decided once is not copied into it.
        """
        now = self.clock()
        n = len(rows)
        # Rows come mostly with content (a page, a record) or mostly by reference (a count): C-level
        # passes over the list, then one light Python pass per row to group by class.
        refs: list[VersionRef] = [
            (row.type, row.id, row.version_id) if isinstance(row, StoredResource) else row for row in rows
        ]
        have: list[StoredResource | None] = [row if isinstance(row, StoredResource) else None for row in rows]
        out: list[Decision | None] = [None] * n
        memo = self._memo(access, uow)
        todo: list[int] | range = range(n)
        if memo:  # decisions made earlier in this transaction (a count before its page)
            todo = []
            for i, known in enumerate(map(memo.get, refs)):
                if known is not None and (known.valid_until is None or now < known.valid_until):
                    out[i] = known
                else:
                    todo.append(i)
        if not todo:
            if client is not None:
                client.verify(uow.conn)
            return out
        facts: list[Facts | None] = list(map(self._facts.get, refs))
        unknown: list[int] = []
        by_class: dict[int, tuple[Facts, list[int]]] = {}  # facts are interned: one object per class
        for i in todo:  # the hot loop of every page
            found = facts[i]
            if found is None:
                row = rows[i]
                if not isinstance(row, StoredResource):
                    unknown.append(i)
                    continue
                if row.content is None:
                    continue  # a tombstone: no decision
                found = facts[i] = self._learn(row)
            group = by_class.get(id(found))
            if group is None:
                by_class[id(found)] = (found, [i])
            else:
                group[1].append(i)
        if unknown:
            _fill(have, refs, unknown, load)
            for i in unknown:
                known_row = have[i]
                if known_row is not None and known_row.content is not None:
                    found = facts[i] = self._learn(known_row)
                    by_class.setdefault(id(found), (found, []))[1].append(i)
        patient_ids = {p for f, _ in by_class.values() for p in f.patients}
        inputs = self._inputs(uow, patient_ids, client)
        agreement_versions, agreements = (
            self._agreements.get(uow, inputs.agreement_versions) if patient_ids else ((), [])
        )
        caller = (access.client_id, access.organization, access.role, access.purpose_of_use)
        keyed: dict[DecisionKey, list[int]] = {}
        one_by_one: list[tuple[int, Facts]] = []
        for f, members in by_class.values():
            if not self._class_level.all_class_level(inputs, f.patients):
                one_by_one += [(i, f) for i in members]  # a Consent reads resource content: decide each resource
                continue
            key = DecisionKey(
                caller=caller,
                facts=f,
                people=tuple(inputs.state(p) for p in f.patients),
                agreements=agreement_versions if f.patients else (),
                policy=self._policy,
                clients=inputs.client_generation,
                deployment=self._deployment,
            )
            keyed.setdefault(key, []).extend(members)
        cacheable = not access.is_break_glass
        found_keys = self.decisions.get_many(keyed, now, shared=shared_cache) if cacheable and keyed else {}
        # Content is needed for each resource decided one by one, and for one member of each class to decide.
        wanted = [i for i, _ in one_by_one if have[i] is None]
        for key, members in keyed.items():
            if key not in found_keys and all(have[i] is None for i in members):
                wanted.append(members[0])
        if wanted:
            _fill(have, refs, wanted, load)
        for i, f in one_by_one:
            full = have[i]
            if full is not None and full.content is not None:
                out[i] = self._decide_one(access, full.json(), f, inputs, agreements, now)
        fresh: dict[DecisionKey, Decision] = {}
        for key, members in keyed.items():
            decision = found_keys.get(key)
            if decision is None:
                representative = next((have[i] for i in members if have[i] is not None), None)
                if representative is None:
                    continue  # gone since it matched: decided as absent
                decision = fresh[key] = self._decide_one(
                    access, representative.json(), key.facts, inputs, agreements, now
                )
            for i in members:
                out[i] = decision
        if cacheable and fresh:
            self.decisions.put_many(fresh, now, shared=shared_cache)
        if remember and memo is not None:
            for i in todo:
                decided = out[i]
                if decided is not None:
                    memo[refs[i]] = decided
        return out

    def _memo(self, access: AccessContext, uow: UnitOfWork) -> dict[VersionRef, Decision] | None:
        """This transaction's decisions for this caller (None for break-glass, decided every time).

        Valid while the transaction writes nothing, like the policy inputs it read (`_inputs`).
        """
        if access.is_break_glass:
            return None
        caller = (access.client_id, access.organization, access.role, access.purpose_of_use)
        known = self._decided_in.get(uow)
        if known is None or known[0] != caller or known[1] != len(uow.written):
            known = (caller, len(uow.written), {})
            self._decided_in[uow] = known
        return known[2]

    def _inputs(self, uow: UnitOfWork, patient_ids: set[str], client: ClientCheck | None = None) -> PolicyInputs:
        """The inputs for these Patients; read once per transaction (a search pages, counts and
        includes in one transaction, `$everything` decides three times in one). `client` is
        verified in the same statement when the inputs are read, else on its own."""
        known = self._read_in.get(uow) if patient_ids else None
        if not patient_ids or (known is not None and patient_ids <= known[0] and known[1] == len(uow.written)):
            if client is not None:
                client.verify(uow.conn)
            return known[2] if known is not None else PolicyInputs()  # nothing written since: the same answer
        wanted = patient_ids | self._expected.get(uow, frozenset())
        inputs = load_inputs(uow, wanted, client_id=client.client_id if client is not None else None)
        if client is not None and not inputs.client_enabled:
            client.refuse()
        self._read_in[uow] = (frozenset(wanted), len(uow.written), inputs)
        return inputs

    def preload(self, uow: UnitOfWork, rows: Sequence[StoredResource]) -> None:
        """Read the policy inputs of every Patient these rows concern in one statement, for the
        decisions about them that follow in this transaction (each caller's `visible` then finds
        them read, as a page's count and rows do): one statement for a batch of notifications
        rather than one per subscriber."""
        patients = {p for row in rows if row.content is not None for p in self.facts_of(row).patients}
        if patients:
            self._inputs(uow, patients)

    def facts_of(self, row: StoredResource) -> Facts:
        """The class of a stored version, remembered: a stored version never changes."""
        found = self._facts.get((row.type, row.id, row.version_id))
        return found if found is not None else self._learn(row)

    def _learn(self, row: StoredResource) -> Facts:
        """Work out, intern and remember the class of a stored version (with content)."""
        if len(self._facts) >= _FACTS_LIMIT:
            self._facts.clear()
            self._classes.clear()
        facts = self.pdp.facts(row.json())
        facts = self._classes.setdefault(facts, facts)
        self._facts[(row.type, row.id, row.version_id)] = facts
        return facts

    def _decide_one(
        self,
        access: AccessContext,
        resource: dict[str, Any],
        facts: Facts,
        inputs: PolicyInputs,
        agreements: list[Any],
        now: datetime,
    ) -> Decision:
        return self.pdp.decide(
            access,
            resource,
            patient_consents=inputs.consent_json(facts.patients),
            patient_resource=inputs.patient_json(facts.patients),
            agreements=agreements,
            now=now,
        )

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
                    event_id=new_id(),
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
                    event_id=new_id(),
                    recorded=recorded,
                    ctx=access,
                    resource_ref=row.reference,
                    decision=dec,
                    interaction=interaction,
                    request_id=request_id,
                )
            )


__all__ = ["ConsentGuard"]


MaySee = Callable[[Sequence[tuple[str, str, str]], UnitOfWork | None, Mapping[str, str | None] | None], list[bool]]
"""(subscription id, focus type, focus id) items, the caller's unit of work or None, and the source
organisations (`Organization/<id>`) of subscriptions the caller knows (their parsed specs) -> may each
subscriber see it."""


def subscriber_visibility(guard: ConsentGuard, store: Store) -> MaySee:
    """Decide notifications with each subscriber's own context: the organisation that created it.

    Subscriptions written by a client carry that client's organisation as their source tag; one
    written by the gateway itself (no tag) is internal and may see everything. The returned
    function answers (subscription id, focus type, focus id) items, reading them all in one
    transaction (the caller's, when it passes its unit of work: the alert's own write) and deciding
    each subscriber's items in one call (as many audit records as before). A subscription whose
    source organisation the caller passes (`sources`, from the spec it parsed of the current
    version) is not read again: one round trip fewer inside an alert's write transaction.
    """

    def may_see(
        items: Sequence[tuple[str, str, str]],
        uow: UnitOfWork | None = None,
        sources: Mapping[str, str | None] | None = None,
    ) -> list[bool]:
        if uow is not None:
            return decide(items, uow, sources or {})
        with store.reader() as own:
            return decide(items, own, sources or {})

    def decide(items: Sequence[tuple[str, str, str]], uow: UnitOfWork, sources: Mapping[str, str | None]) -> list[bool]:
        out = [False] * len(items)
        if not items:
            return out
        # Foci this transaction wrote are current as written (the alert's own write): no read-back.
        written = {(r.type, r.id): r for r in uow.written}
        wanted = [("Subscription", sub_id) for sub_id, _, _ in items if sub_id not in sources]
        wanted += [(rtype, rid) for _, rtype, rid in items if (rtype, rid) not in written]
        found = {(r.type, r.id): r for r in uow.fetch_many(wanted)}  # one query for both
        orgs = dict(sources)
        for ref, sub in found.items():
            if ref[0] == "Subscription" and sub.content is not None:
                orgs[ref[1]] = source_organization(sub.json())
        foci: dict[tuple[str, str], StoredResource] = {}
        for _, rtype, rid in items:
            row = written.get((rtype, rid)) or found.get((rtype, rid))
            if row is not None and not row.deleted:
                foci[(rtype, rid)] = row
        guard.preload(uow, list(foci.values()))
        by_sub: dict[str, list[int]] = {}
        for index, (sub_id, rtype, rid) in enumerate(items):
            if (rtype, rid) in foci:
                by_sub.setdefault(sub_id, []).append(index)
        for sub_id, indexes in by_sub.items():
            if sub_id not in orgs:  # gone: nobody to tell
                continue
            org = orgs[sub_id]
            if org is None:
                for i in indexes:
                    out[i] = True
                continue
            subscriber = AccessContext(
                client_id=f"subscription:{sub_id}",
                organization=org,
                scopes=frozenset({"system/*.rs"}),
            )
            rows = [foci[(items[i][1], items[i][2])] for i in indexes]
            # this process's cache only: an alert's person is mostly new to every cache, and a Redis
            # round trip each way would sit inside the alert's write transaction
            visible = guard.visible(subscriber, uow, rows, interaction="read", shared_cache=False)
            seen = {(r.type, r.id) for r in visible}
            for i in indexes:
                out[i] = (items[i][1], items[i][2]) in seen
        return out

    return may_see
