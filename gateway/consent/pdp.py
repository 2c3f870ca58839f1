"""The one policy decision point: may this caller see this resource, now?

Every read path (read, vread, history, search pages, `_include`, `$everything`, `$match`,
exports, subscription and alert payloads) asks `PolicyDecisionPoint.decide` or `.filter`.
It is pure: the caller fetches the person's Consents, Patient resource(s) and the agreements,
and passes `now`; nothing here reads a clock, a database or the network.

Order of the rules for a resource in the patient compartment (per Patient it belongs to; a
resource belonging to several Patients, e.g. a Group, is visible only if every one permits):

1. Break-glass (purpose BTG): allowed only with a non-blank reason, a role in
   `break_glass.roles`, and an in-force agreement with `isa-break-glass` admitting this data.
   Allowed: permit everything except labels in `break_glass.withheld_labels` (V by default)
   not explicitly permitted by a Consent; objections are overridden when the policy says so;
   the decision carries `break_glass=True`, `expires_at` = now + TTL, and obligations to audit
   as a security alert and notify the case manager. Refused: the request is judged as ordinary
   emergency treatment (BTG dropped from the purposes) and still audited as a security alert.
2. Agreement gate: an in-force agreement must admit (recipient org, purpose, type, category,
   source). No agreement -> deny, whatever a Consent says. Exception (`own_source_visible`):
   data whose source organisation is the caller's own organisation.
3. Consents of the person: any deny -> deny (an objection is a deny). Any permit -> permit.
4. No Consent speaks -> default policy: permit for `purposes.default_permit` (TREAT), else deny.
5. National data opt-out: for a purpose that is not direct care, a Patient with
   `EXT_NATIONAL_OPT_OUT` = true is denied unless a Consent permit names that purpose
   explicitly. If the Patient resource was not supplied the answer is deny (fail closed).
6. Labels (`labels.py`): R and sensitivity labels need the admitting agreement or a Consent
   permit provision to name them; V needs a Consent permit provision naming V. Own-source data
   is not withheld by labels (the organisation made it).

Resources outside the compartment: a resource that names a Patient anywhere (a type not listed
in the CompartmentDefinition, or a member linked through an element the compartment does not
list) is treated as that Patient's data: a safety net against new types and odd shapes.
Otherwise (Organization, Practitioner, Questionnaire, agreements …) it is visible to any
authenticated caller whose SMART scopes allow the type (scopes are checked by gateway/auth),
except types in `non_patient.withheld_types` and anything carrying a restricting label. The
withheld types are AuditEvent, Consent and Provenance: a Provenance whose target is (say) an
Encounter names no Patient, so callers must decide it on its target resource instead.

System contexts (intake, alert evaluation) are permitted; anything they deliver to a client
must be decided again with that client's context.

Deciding once per class: with Consents that read no resource content (`consents.is_class_level`),
the rules above read only a resource's `Facts` (type, people, source organisations, categories,
labels, profiles, and a Patient's own opt-out flag), so `filter` decides each class once and the
enforcement point caches class decisions (`decision_cache.py`). A Consent with `code`,
`dataPeriod` or `data` makes its person's resources be decided one by one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from gateway.auth.context import BREAK_GLASS as BTG_PURPOSE
from gateway.auth.context import AccessContext
from gateway.codes import EXT_NATIONAL_OPT_OUT
from gateway.consent import decision as d
from gateway.consent.agreements import Agreement, categories_of, source_organizations
from gateway.consent.compartment import Compartment, default_compartment, patients_referenced
from gateway.consent.consents import Request, consent_patient, evaluate_consent, is_class_level, period_boundaries
from gateway.consent.decision import Decision, FilterResult
from gateway.consent.facts import Facts
from gateway.consent.fhirtime import boundaries
from gateway.consent.labels import Label, label_in, labels_of, restricting
from gateway.consent.policy import PolicyConfig, default_policy
from gateway.consent.refs import normalise, self_reference
from gateway.types import JSON

_MEMO_SIZE = 100_000  # stored versions whose patients are remembered

PatientInput = JSON | Iterable[JSON] | None


def is_opted_out(patient: JSON) -> bool:
    """True when the Patient carries the national data opt-out extension set to true."""
    return any(
        isinstance(ext, dict) and ext.get("url") == EXT_NATIONAL_OPT_OUT and ext.get("valueBoolean") is True
        for ext in patient.get("extension") or ()
    )


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


class PolicyDecisionPoint:
    """Decides access from a policy file, the compartment, Consents and agreements. Thread-safe, stateless."""

    def __init__(self, policy: PolicyConfig | None = None, compartment: Compartment | None = None) -> None:
        self.policy = policy or default_policy()
        self.compartment = compartment or default_compartment()
        self._patients_memo: dict[tuple[str, Any, Any], frozenset[str]] = {}

    # -- public API ---------------------------------------------------------------------------

    def decide(
        self,
        ctx: AccessContext,
        resource: JSON,
        *,
        patient_consents: Iterable[JSON] = (),
        patient_resource: PatientInput = None,
        agreements: Iterable[Agreement] = (),
        now: datetime,
        actions: frozenset[str] | None = None,
        referenced: Mapping[str, JSON] | None = None,
    ) -> Decision:
        """Permit or deny one resource for `ctx`.

        `patient_consents`: the Consents of the Patient(s) the resource belongs to (others are
        ignored). `patient_resource`: that Patient (or several), needed for the opt-out flag.
        `referenced`: resources named by Consent `data` with meaning=related
        (`consents.data_references`). `now` must be timezone-aware.
        """
        _check_now(now)
        return self._decide(
            ctx,
            resource,
            _index_consents(patient_consents),
            _index_patients(patient_resource),
            list(agreements),
            now,
            actions or self.policy.read_actions,
            referenced or {},
        )

    def filter(
        self,
        ctx: AccessContext,
        resources: Sequence[JSON],
        *,
        patient_consents: Iterable[JSON] = (),
        patient_resources: Iterable[JSON] = (),
        agreements: Iterable[Agreement] = (),
        now: datetime,
        actions: frozenset[str] | None = None,
        referenced: Mapping[str, JSON] | None = None,
    ) -> FilterResult:
        """Decide a page of resources at once; hidden ones are dropped before anything is counted.

        Resources of one class (`Facts`) are decided once, unless a Consent of their people reads
        resource content (`consents.is_class_level`): then each is decided on its own.
        """
        _check_now(now)
        consents = _index_consents(patient_consents)
        patients = _index_patients(list(patient_resources))
        agreement_list = list(agreements)
        acts = actions or self.policy.read_actions
        refs = referenced or {}
        class_level = {pid: all(is_class_level(c) for c in cs) for pid, cs in consents.items()}
        by_class: dict[Facts, Decision] = {}
        decisions = []
        for r in resources:
            facts = self.facts(r)
            if not all(class_level.get(p, True) for p in facts.patients):
                decisions.append(self._decide(ctx, r, consents, patients, agreement_list, now, acts, refs))
                continue
            dec = by_class.get(facts)
            if dec is None:
                dec = by_class[facts] = self._decide(ctx, r, consents, patients, agreement_list, now, acts, refs)
            decisions.append(dec)
        return FilterResult(
            permitted=[r for r, dec in zip(resources, decisions, strict=True) if dec.permit],
            decisions=decisions,
            obligations=frozenset().union(*(dec.obligations for dec in decisions)),
        )

    def facts(self, resource: JSON) -> Facts:
        """The class of a resource: everything a decision reads from it when Consents are class-level."""
        rtype = str(resource.get("resourceType", ""))
        meta = resource.get("meta")
        profiles = meta.get("profile") if isinstance(meta, dict) else None
        return Facts(
            rtype=rtype,
            patients=tuple(sorted(self.patients_for(resource))),
            sources=source_organizations(resource),
            categories=categories_of(resource),
            labels=labels_of(resource),
            profiles=frozenset(p for p in profiles or () if isinstance(p, str)),
            opted_out=is_opted_out(resource) if rtype == "Patient" else None,
        )

    def patients_for(self, resource: JSON) -> set[str]:
        """The Patient ids whose policy governs this resource (what the caller must fetch Consents for).

        A stored version never changes, so the answer is remembered per (type, id, versionId).
        """
        rtype = str(resource.get("resourceType", ""))
        version = (resource.get("meta") or {}).get("versionId")
        key = (rtype, resource.get("id"), version) if version is not None and resource.get("id") else None
        if key is not None and key in self._patients_memo:
            return set(self._patients_memo[key])
        found = self.compartment.patients_of(resource) if self.compartment.is_member_type(rtype) else set()
        result = found or patients_referenced(resource)
        if key is not None:
            if len(self._patients_memo) >= _MEMO_SIZE:
                self._patients_memo.clear()
            self._patients_memo[key] = frozenset(result)
        return set(result)

    # -- rules ----------------------------------------------------------------------------------

    def _decide(
        self,
        ctx: AccessContext,
        resource: JSON,
        consents: dict[str, list[JSON]],
        patients: dict[str, JSON],
        agreements: list[Agreement],
        now: datetime,
        actions: frozenset[str],
        referenced: Mapping[str, JSON],
    ) -> Decision:
        if ctx.is_system:
            return Decision(True, (d.SYSTEM_CONTEXT,))
        rtype = str(resource.get("resourceType", ""))
        patient_ids = sorted(self.patients_for(resource))
        if not patient_ids:
            return self._non_patient(resource, rtype)
        if rtype == "Patient" and isinstance(resource.get("id"), str):
            patients = {**patients, resource["id"]: resource}
        per_patient = [
            self._for_patient(
                ctx,
                resource,
                rtype,
                pid,
                consents.get(pid, []),
                patients.get(pid),
                agreements,
                now,
                actions,
                referenced,
            )
            for pid in patient_ids
        ]
        deciding = [x for x in per_patient if x.deny] or per_patient
        permit = all(x.permit for x in per_patient)
        expiries = [x.expires_at for x in per_patient if x.expires_at is not None]
        expires_at = min(expiries) if permit and expiries else None
        return Decision(
            permit=permit,
            reasons=_unique(r for x in deciding for r in x.reasons),
            policy_ids=_unique(p for x in deciding for p in x.policy_ids),
            obligations=frozenset().union(*(x.obligations for x in per_patient)),
            patients=tuple(patient_ids),
            break_glass=permit and any(x.break_glass for x in per_patient),
            expires_at=expires_at,
            valid_until=_valid_until(
                now, [c for pid in patient_ids for c in consents.get(pid, [])], agreements, expires_at
            ),
        )

    def _non_patient(self, resource: JSON, rtype: str) -> Decision:
        if rtype in self.policy.non_patient_withheld_types:
            return Decision(False, (d.NON_PATIENT_WITHHELD,))
        clearable, consent_only = restricting(labels_of(resource), self.policy.labels)
        if clearable or consent_only:
            return Decision(False, (d.WITHHELD,))
        return Decision(True, (d.NON_PATIENT,))

    def _for_patient(
        self,
        ctx: AccessContext,
        resource: JSON,
        rtype: str,
        patient_id: str,
        consents: list[JSON],
        patient: JSON | None,
        agreements: list[Agreement],
        now: datetime,
        actions: frozenset[str],
        referenced: Mapping[str, JSON],
    ) -> Decision:
        pol = self.policy
        purposes = pol.purposes_of(ctx.purpose_of_use)
        sources = source_organizations(resource)
        categories = categories_of(resource)
        org = normalise(ctx.organization) if ctx.organization else None
        own = pol.own_source_visible and org is not None and org in sources
        labels = labels_of(resource)
        in_force = [a for a in agreements if a.in_force(now)]
        reasons: list[str] = []
        obligations: set[str] = set()

        def result(permit: bool, reason: str, ids: Iterable[str] = (), **extra: Any) -> Decision:
            return Decision(permit, (*reasons, reason), _unique(ids), frozenset(obligations), (patient_id,), **extra)

        btg_agreements: list[Agreement] = []
        if ctx.is_break_glass:
            obligations.add(d.AUDIT_SECURITY_ALERT)
            btg_agreements = [
                a for a in in_force if a.break_glass and a.admits(org, purposes, rtype, categories, sources)
            ]
            allowed = bool((ctx.break_glass_reason or "").strip()) and ctx.role in pol.break_glass.roles
            if not (allowed and btg_agreements):
                btg_agreements = []
                reasons.append(d.BREAK_GLASS_REFUSED)
                purposes = purposes - {BTG_PURPOSE}

        request = Request(
            client_id=ctx.client_id,
            organization=org,
            purposes=purposes,
            actions=actions,
            resource=resource,
            resource_ref=self_reference(resource),
            resource_type=rtype,
            labels=labels,
            now=now,
            referenced=referenced,
        )
        outcomes = [evaluate_consent(c, request) for c in consents]
        denies = [o for o in outcomes if o.effect == "deny"]
        permits = [o for o in outcomes if o.effect == "permit"]
        consent_cleared: frozenset[Label] = frozenset().union(*(o.cleared_labels for o in permits))

        if btg_agreements:
            ids = [a.ref for a in btg_agreements]
            withheld = [lbl for lbl in labels if label_in(lbl, pol.break_glass.withheld_labels)]
            if any(not label_in(lbl, consent_cleared) for lbl in withheld):
                return result(False, d.WITHHELD, ids)
            if denies and not pol.break_glass.overrides_consent_deny:
                return result(False, d.CONSENT_DENY, [o.consent_ref for o in denies])
            obligations.add(d.NOTIFY_CASE_MANAGER)
            return result(
                True,
                d.BREAK_GLASS,
                [*ids, *(o.consent_ref for o in denies)],
                break_glass=True,
                expires_at=now + pol.break_glass.ttl,
            )

        admitting = [a for a in in_force if a.admits(org, purposes, rtype, categories, sources)]
        if not admitting and not own:
            return result(False, d.NO_AGREEMENT)
        gate_ids = [a.ref for a in admitting]
        if not admitting:
            reasons.append(d.OWN_SOURCE)
        if denies:
            return result(False, d.CONSENT_DENY, [o.consent_ref for o in denies])
        if permits:
            verdict, ids = d.CONSENT_PERMIT, [*(o.consent_ref for o in permits), *gate_ids]
        elif purposes & pol.default_permit_purposes:
            verdict, ids = d.DEFAULT_PERMIT, gate_ids
        else:
            return result(False, d.DEFAULT_DENY, gate_ids)

        if not pol.is_direct_care(ctx.purpose_of_use):
            named = frozenset().union(*(o.named_purposes for o in permits))
            if not named & purposes:
                if patient is None:
                    return result(False, d.OPT_OUT_UNKNOWN, ids)
                if is_opted_out(patient):
                    return result(False, d.NATIONAL_OPT_OUT, ids)

        if not own:
            clearable, consent_only = restricting(labels, pol.labels)
            by_agreement: frozenset[Label] = frozenset().union(*(a.security_labels for a in admitting))
            hidden = [lbl for lbl in clearable if not (label_in(lbl, consent_cleared) or label_in(lbl, by_agreement))]
            hidden += [lbl for lbl in consent_only if not label_in(lbl, consent_cleared)]
            if hidden:
                return result(False, d.WITHHELD, ids)
        return result(True, verdict, ids)


def _check_now(now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")


def _index_consents(consents: Iterable[JSON]) -> dict[str, list[JSON]]:
    index: dict[str, list[JSON]] = {}
    for consent in consents:
        pid = consent_patient(consent)
        if pid is not None:
            index.setdefault(pid, []).append(consent)
    return index


def _index_patients(patients: PatientInput) -> dict[str, JSON]:
    if patients is None:
        return {}
    items = [patients] if isinstance(patients, dict) else list(patients)
    return {p["id"]: p for p in items if isinstance(p.get("id"), str)}


def _valid_until(
    now: datetime, consents: list[JSON], agreements: list[Agreement], expires_at: datetime | None
) -> datetime | None:
    instants = [t for c in consents for t in period_boundaries(c)]
    instants += [t for a in agreements for t in boundaries(a.period)]
    if expires_at is not None:
        instants.append(expires_at)
    future = [t for t in instants if t > now]
    return min(future) if future else None
