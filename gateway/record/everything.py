"""The unified record: everything the store holds about one person (or one episode), from every source.

Used by `Patient/$everything` and `EpisodeOfCare/$everything`. The work is done on the search
index, not by walking resources: `sp_reference` answers "who refers to these Patients" and "what
do these resources refer to" in one query each, so a 500-resource record costs a handful of queries.

A person is the Patient asked for plus every Patient record linked to it through `Patient.link`
(either direction, any link type, transitively): three organisations' records of one person, and
merged records, each included once. Their resources are the rows of `sp_reference` whose target is
one of those Patients through a parameter the Patient CompartmentDefinition names for that type.

Two sources often send the same fact (the hospital's Encounter, re-sent through the community
feed). Resources of one type sharing a business identifier (system|value) are one fact: the most
recently updated copy is kept and the others are left out. Patients are never de-duplicated (each
source's record of the person is itself part of the answer). Each kept resource brings the
Provenance resources that target it, and the non-patient-specific resources it refers to
(Practitioner, Organization, Location …) one level deep.

The caller's `visible` (the consent engine) sees every candidate before de-duplication, so a
hidden copy can never shadow a visible one, and before anything is counted or paged.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import ColumnElement, and_, false, select

from gateway.alerts.registry import ref_id
from gateway.consent.compartment import Compartment, default_compartment
from gateway.fhir.errors import not_found
from gateway.store.api import StoredResource, UnitOfWork
from gateway.store.schema import resource, sp_date, sp_reference
from gateway.store.search.kinds import date_range

Visible = Callable[[UnitOfWork, list[StoredResource]], list[StoredResource]]
Ref = tuple[str, str]

_CHUNK = 500

# The "care date" of each type, as its date search parameter (start/end filter on these).
CLINICAL_DATE_PARAMS: dict[str, str] = {
    "AuditEvent": "date",
    "Basic": "created",
    "CarePlan": "date",
    "CareTeam": "date",
    "Communication": "sent",
    "Condition": "onset-date",
    "Consent": "date",
    "Encounter": "date",
    "EpisodeOfCare": "date",
    "Flag": "date",
    "Goal": "start-date",
    "List": "date",
    "Observation": "date",
    "Provenance": "recorded",
    "QuestionnaireResponse": "authored",
    "RiskAssessment": "date",
    "ServiceRequest": "authored",
    "Task": "authored-on",
}

# What an episode of case management gathers besides its own people and team.
EPISODE_MEMBER_TYPES = ("CarePlan", "Encounter", "Task", "Communication", "QuestionnaireResponse")


NOT_CARE_RECORD = frozenset({"AuditEvent"})


@dataclass(frozen=True)
class EverythingParams:
    """Filters of `$everything`, already parsed; all times naive UTC."""

    start: datetime | None = None  # care dates on or after (the start of) this
    end: datetime | None = None  # care dates on or before (the end of) this
    since: datetime | None = None  # meta.lastUpdated on or after this
    types: frozenset[str] | None = None  # only these resource types

    @classmethod
    def parse(
        cls, *, start: str | None, end: str | None, since: str | None, types: Iterable[str] | None
    ) -> EverythingParams:
        """Raises ValueError naming the parameter that is not a FHIR date."""

        def bound(name: str, text: str | None, high: bool) -> datetime | None:
            if not text:
                return None
            try:
                low_value, high_value = date_range(text)
            except ValueError as exc:
                raise ValueError(f"{name} must be a FHIR date or dateTime, not {text!r}") from exc
            return high_value if high else low_value

        wanted = frozenset(t for t in (types or ()) if t)
        return cls(
            start=bound("start", start, False),
            end=bound("end", end, True),
            since=bound("_since", since, False),
            types=wanted or None,
        )

    def wants(self, rtype: str) -> bool:
        if self.types is None:
            # The gateway's own access log is not part of the care record (and grows with every
            # read); ask for it with _type=AuditEvent.
            return rtype not in NOT_CARE_RECORD
        return rtype in self.types


# -- index queries -------------------------------------------------------------------------------


def _chunks(items: Collection[str]) -> Iterable[list[str]]:
    ordered = sorted(items)
    for i in range(0, len(ordered), _CHUNK):
        yield ordered[i : i + _CHUNK]


def linked_patient_ids(uow: UnitOfWork, patient_id: str) -> list[str]:
    """The Patient and every Patient linked to it (either direction, transitively); it comes first."""
    ref = sp_reference.c
    seen = {patient_id}
    frontier = {patient_id}
    while frontier:
        found: set[str] = set()
        for chunk in _chunks(frontier):
            base = select(ref.res_id, ref.target_id).where(
                ref.res_type == "Patient", ref.param == "link", ref.target_type == "Patient"
            )
            for row in uow.conn.execute(base.where(ref.res_id.in_(chunk))):
                found.add(row.target_id)
            for row in uow.conn.execute(base.where(ref.target_id.in_(chunk))):
                found.add(row.res_id)
        frontier = {f for f in found if f} - seen
        seen |= frontier
    return [patient_id, *sorted(seen - {patient_id})]


def compartment_refs(uow: UnitOfWork, patient_ids: Collection[str], compartment: Compartment) -> set[Ref]:
    """Resources (other than Patients) in the compartment of any of these Patients."""
    ref = sp_reference.c
    found: set[Ref] = set()
    for chunk in _chunks(patient_ids):
        rows = uow.conn.execute(
            select(ref.res_type, ref.res_id, ref.param).where(ref.target_type == "Patient", ref.target_id.in_(chunk))
        )
        for row in rows:
            if row.res_type != "Patient" and row.param in compartment.params.get(row.res_type, ()):
                found.add((row.res_type, row.res_id))
    return found


def _wanted_members(column: ColumnElement[str], params: EverythingParams) -> ColumnElement[bool]:
    """SQL: a referring resource of a type `params` wants (Patients are read on their own)."""
    if params.types is None:
        return column.notin_(["Patient", *sorted(NOT_CARE_RECORD)])
    return column.in_(sorted(params.types - {"Patient"}))


def compartment_rows(
    uow: UnitOfWork, patient_ids: Collection[str], compartment: Compartment, params: EverythingParams
) -> list[StoredResource]:
    """Current versions of the wanted resources (other than Patients) in these Patients' compartment.

    One join of the reference index with the resources, driven by the few Patient ids: the
    types left out (`params`) are dropped in SQL, so the gateway's growing access log costs nothing.
    """
    ref, r = sp_reference.c, resource.c
    stmt = (
        select(ref.param, r.res_type, r.res_id, r.version_id, r.last_updated, r.content)
        .select_from(sp_reference.join(resource, and_(r.res_type == ref.res_type, r.res_id == ref.res_id)))
        .where(ref.target_type == "Patient", r.deleted == false())
    )
    stmt = stmt.where(_wanted_members(ref.res_type, params))
    if params.since is not None:
        stmt = stmt.where(r.last_updated >= params.since)
    found: dict[Ref, StoredResource] = {}
    for chunk in _chunks(patient_ids):
        for param, rtype, rid, version, updated, content in uow.conn.execute(stmt.where(ref.target_id.in_(chunk))):
            key = (rtype, rid)
            if key not in found and param in compartment.params.get(rtype, ()):
                body = content.encode() if isinstance(content, str) else content
                found[key] = StoredResource(rtype, rid, version, updated, False, body)
    return list(found.values())


@dataclass(frozen=True)
class Links:
    """For the resources referring to some Patients, and those Patients: (Provenance, its target)
    pairs, and (resource, what it refers to) pairs. Read by joins driven by the few Patient ids,
    so a record of hundreds of resources never becomes hundreds of bound parameters."""

    provenance: set[tuple[Ref, Ref]]
    references: set[tuple[Ref, Ref]]


def compartment_links(
    uow: UnitOfWork, patient_ids: Collection[str], compartment: Compartment, params: EverythingParams
) -> Links:
    """The `Links` of the wanted members of these Patients' compartment, and of the Patients.

    Only references to types outside the compartment are read (those are what `$everything`
    brings along); Provenance is read whatever it targets.
    """
    ref = sp_reference.c
    other = sp_reference.alias("linked")
    o = other.c
    provenance: set[tuple[Ref, Ref]] = set()
    pairs: set[tuple[Ref, Ref]] = set()
    for chunk in _chunks(patient_ids):
        # Provenance whose target is a resource referring to the Patients, or a Patient itself.
        about = select(o.res_id, o.target_type, o.target_id).where(o.res_type == "Provenance", o.param == "target")
        via_members = about.join_from(
            other, sp_reference, and_(ref.res_type == o.target_type, ref.res_id == o.target_id)
        ).where(ref.target_type == "Patient", ref.target_id.in_(chunk), _wanted_members(ref.res_type, params))
        direct = about.where(o.target_type == "Patient", o.target_id.in_(chunk))
        for stmt in (via_members, direct):
            provenance.update(
                (("Provenance", row.res_id), (row.target_type, row.target_id)) for row in uow.conn.execute(stmt)
            )
        # What the members and the Patients refer to (their own references).
        targets = select(o.res_type, o.res_id, o.target_type, o.target_id).where(
            o.target_type.is_not(None), o.target_type.notin_(sorted(compartment.params))
        )
        members = targets.join_from(other, sp_reference, and_(ref.res_type == o.res_type, ref.res_id == o.res_id))
        members = members.where(
            ref.target_type == "Patient", ref.target_id.in_(chunk), _wanted_members(ref.res_type, params)
        )
        patients = targets.where(o.res_type == "Patient", o.res_id.in_(chunk))
        for stmt in (members, patients):
            for row in uow.conn.execute(stmt):
                if row.target_id:
                    pairs.add(((row.res_type, row.res_id), (row.target_type, row.target_id)))
    return Links(provenance, pairs)


def _referrers(
    uow: UnitOfWork, target_type: str, target_ids: Collection[str], source_types: Collection[str]
) -> set[Ref]:
    ref = sp_reference.c
    found: set[Ref] = set()
    for chunk in _chunks(target_ids):
        rows = uow.conn.execute(
            select(ref.res_type, ref.res_id).where(
                ref.target_type == target_type, ref.target_id.in_(chunk), ref.res_type.in_(list(source_types))
            )
        )
        found.update((r.res_type, r.res_id) for r in rows)
    return found


def _targets(uow: UnitOfWork, sources: Collection[Ref], params: Collection[str] | None = None) -> set[Ref]:
    """What these resources refer to (literal, local references), optionally through named params only."""
    ref = sp_reference.c
    found: set[Ref] = set()
    for rtype, ids in _by_type(sources).items():
        for chunk in _chunks(ids):
            stmt = select(ref.target_type, ref.target_id).where(ref.res_type == rtype, ref.res_id.in_(chunk))
            if params is not None:
                stmt = stmt.where(ref.param.in_(list(params)))
            found.update((row.target_type, row.target_id) for row in uow.conn.execute(stmt) if row.target_id)
    return {f for f in found if f[0]}


def _by_type(refs: Iterable[Ref]) -> dict[str, set[str]]:
    grouped: dict[str, set[str]] = {}
    for rtype, rid in refs:
        grouped.setdefault(rtype, set()).add(rid)
    return grouped


def provenance_refs(uow: UnitOfWork, targets: Collection[Ref]) -> set[Ref]:
    """Provenance resources whose `target` is one of these resources."""
    ref = sp_reference.c
    wanted = set(targets)
    found: set[Ref] = set()
    for chunk in _chunks({rid for _, rid in wanted}):
        rows = uow.conn.execute(
            select(ref.res_id, ref.target_type, ref.target_id).where(
                ref.res_type == "Provenance", ref.param == "target", ref.target_id.in_(chunk)
            )
        )
        found.update(("Provenance", r.res_id) for r in rows if (r.target_type, r.target_id) in wanted)
    return found


def care_dates(uow: UnitOfWork, refs: Collection[Ref]) -> dict[Ref, list[tuple[datetime, datetime]]]:
    """The indexed care-date ranges of each resource whose type has one (see CLINICAL_DATE_PARAMS)."""
    d = sp_date.c
    found: dict[Ref, list[tuple[datetime, datetime]]] = {}
    for rtype, ids in _by_type(r for r in refs if r[0] in CLINICAL_DATE_PARAMS).items():
        for chunk in _chunks(ids):
            rows = uow.conn.execute(
                select(d.res_id, d.low, d.high).where(
                    d.res_type == rtype, d.res_id.in_(chunk), d.param == CLINICAL_DATE_PARAMS[rtype]
                )
            )
            for row in rows:
                found.setdefault((rtype, row.res_id), []).append((row.low, row.high))
    return found


# -- pure steps ------------------------------------------------------------------------------------


def _overlaps(ranges: list[tuple[datetime, datetime]], start: datetime | None, end: datetime | None) -> bool:
    return any((end is None or low <= end) and (start is None or high >= start) for low, high in ranges)


def _business_keys(stored: StoredResource) -> set[str]:
    if stored.content is None:
        return set()
    body = orjson.loads(stored.content)
    return {
        f"{i['system']}|{i['value']}"
        for i in body.get("identifier") or []
        if isinstance(i, dict) and i.get("system") and i.get("value")
    }


def deduplicate(rows: list[StoredResource]) -> list[StoredResource]:
    """One copy of each fact: same type and a shared identifier (system|value) -> keep the newest.

    Patients are kept whole (each source's record of the person belongs in the answer).
    """
    claimed: set[tuple[str, str]] = set()
    kept: set[Ref] = set()
    for stored in sorted(rows, key=lambda s: (s.last_updated, s.id), reverse=True):
        keys = set() if stored.type == "Patient" else {(stored.type, k) for k in _business_keys(stored)}
        if keys & claimed:
            continue
        claimed |= keys
        kept.add((stored.type, stored.id))
    return [s for s in rows if (s.type, s.id) in kept]


def _order(rows: Iterable[StoredResource], first: list[Ref]) -> list[StoredResource]:
    """Leading refs in the order given, then everything else by type and id (stable across pages)."""
    rank = {r: i for i, r in enumerate(first)}
    unique = {(s.type, s.id): s for s in rows}
    return sorted(unique.values(), key=lambda s: (rank.get((s.type, s.id), len(rank)), s.type, s.id))


def _supporting_types(compartment: Compartment) -> Callable[[str], bool]:
    """Types that are not about a patient (not compartment members): safe to pull in by reference."""
    return lambda rtype: not compartment.is_member_type(rtype)


# -- the two record views ------------------------------------------------------------------------


def _complete(
    uow: UnitOfWork,
    core: list[StoredResource],
    params: EverythingParams,
    visible: Visible,
    compartment: Compartment,
    links: Links | None = None,
) -> list[StoredResource]:
    """Consent, de-duplication, then Provenance and supporting resources of what is kept."""
    kept = deduplicate(visible(uow, core))
    kept_refs = {(s.type, s.id) for s in kept}
    supporting = _supporting_types(compartment)
    if links is None:
        extra_refs = provenance_refs(uow, kept_refs)
        extra_refs |= {t for t in _targets(uow, kept_refs | extra_refs) if supporting(t[0])}
    else:  # the links of the whole compartment, read up front: keep those of what was kept
        extra_refs = {prov for prov, target in links.provenance if target in kept_refs}
        extra_refs |= {t for src, t in links.references if src in kept_refs and supporting(t[0])}
        extra_refs |= {t for t in _targets(uow, extra_refs - kept_refs) if supporting(t[0])}
    extra_refs = {r for r in extra_refs - kept_refs if params.wants(r[0])}
    extra = [s for s in uow.fetch_many(sorted(extra_refs)) if params.since is None or s.last_updated >= params.since]
    return [*kept, *visible(uow, extra)]


def _visible_focus(uow: UnitOfWork, rtype: str, rid: str, visible: Visible) -> StoredResource:
    stored = uow.read(rtype, rid)  # not-found 404 / gone 410
    if not visible(uow, [stored]):
        raise not_found(f"{rtype}/{rid}")  # hidden looks like absent: no oracle
    return stored


def patient_everything(
    uow: UnitOfWork,
    patient_id: str,
    params: EverythingParams,
    visible: Visible,
    *,
    compartment: Compartment | None = None,
) -> list[StoredResource]:
    """The whole unified record of one person, ordered (asked-for Patient, linked Patients, the rest).

    Raises FhirError not-found / gone when the Patient is absent, deleted or hidden from the caller.
    """
    compartment = compartment or default_compartment()
    _visible_focus(uow, "Patient", patient_id, visible)
    patient_ids = linked_patient_ids(uow, patient_id)
    members = compartment_rows(uow, patient_ids, compartment, params)
    if params.start is not None or params.end is not None:
        dates = care_dates(uow, [(s.type, s.id) for s in members])
        members = [
            s
            for s in members
            if (s.type, s.id) not in dates or _overlaps(dates[(s.type, s.id)], params.start, params.end)
        ]
    people = uow.fetch_many(("Patient", p) for p in patient_ids) if params.wants("Patient") else []
    core = [s for s in people if params.since is None or s.last_updated >= params.since] + members
    links = compartment_links(uow, patient_ids, compartment, params)
    rows = _complete(uow, core, params, visible, compartment, links)
    return _order(rows, [("Patient", p) for p in patient_ids])


def _period(episode: StoredResource) -> tuple[datetime | None, datetime | None]:
    period = orjson.loads(episode.content or b"{}").get("period") or {}
    try:
        start = date_range(period["start"])[0] if period.get("start") else None
        end = date_range(period["end"])[1] if period.get("end") else None
    except ValueError:
        return None, None
    return start, end


def episode_everything(
    uow: UnitOfWork,
    episode_id: str,
    params: EverythingParams,
    visible: Visible,
    *,
    compartment: Compartment | None = None,
) -> list[StoredResource]:
    """One episode of case management: the episode, its person, care manager, teams and their members,
    and the CarePlans / Encounters / Tasks / Communications / QuestionnaireResponses that refer to
    the episode or (dated within the episode's period) to the person.

    Raises FhirError not-found / gone when the episode is absent, deleted or hidden from the caller.
    """
    compartment = compartment or default_compartment()
    episode = _visible_focus(uow, "EpisodeOfCare", episode_id, visible)
    body = episode.json()
    patient = ref_id((body.get("patient") or {}).get("reference"))
    patient_ids = linked_patient_ids(uow, patient) if patient else []
    people = _targets(uow, [("EpisodeOfCare", episode_id)], ("care-manager", "team", "organization"))
    teams = {r for r in people if r[0] == "CareTeam"}
    members = {
        t for t in _targets(uow, teams, ("participant", "organization")) if t[0] != "Patient" or t[1] in patient_ids
    }
    by_episode = _referrers(uow, "EpisodeOfCare", [episode_id], EPISODE_MEMBER_TYPES)
    about_person = {r for r in compartment_refs(uow, patient_ids, compartment) if r[0] in EPISODE_MEMBER_TYPES}
    start, end = _period(episode)
    dates = care_dates(uow, about_person - by_episode)
    in_period = {r for r in about_person - by_episode if r in dates and _overlaps(dates[r], start, end)}
    refs = {("EpisodeOfCare", episode_id)} | {("Patient", p) for p in patient_ids} | people | members
    refs = {r for r in refs | by_episode | in_period if params.wants(r[0])}
    core = [s for s in uow.fetch_many(sorted(refs)) if params.since is None or s.last_updated >= params.since]
    rows = _complete(uow, core, params, visible, compartment)
    return _order(rows, [("EpisodeOfCare", episode_id), *(("Patient", p) for p in patient_ids)])
