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

import functools
import weakref
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    CompoundSelect,
    DateTime,
    Select,
    and_,
    any_,
    bindparam,
    false,
    func,
    or_,
    select,
    union_all,
)

from gateway.alerts.registry import ref_id
from gateway.consent.compartment import Compartment, default_compartment
from gateway.fhir.errors import not_found
from gateway.store.api import Store, StoredResource, UnitOfWork
from gateway.store.id_lists import in_json, json_list
from gateway.store.inline import inline
from gateway.store.schema import resource, sp_date, sp_reference
from gateway.store.search.kinds import date_range

Visible = Callable[[UnitOfWork, list[StoredResource]], list[StoredResource]]
# Whether the caller may see one row, decided but not audited: the record's audited decision includes it.
MaySee = Callable[[UnitOfWork, StoredResource], bool]
Ref = tuple[str, str]

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
#
# Every statement is built once per shape (dialect, types …) and cached, so SQLAlchemy neither
# rebuilds nor re-keys it per call; the ids go in as bound values. A set of ids is bound as one
# JSON array (gateway/store/id_lists.py), and no planner ever weighs a join against a scan of a whole
# table (PostgreSQL hash-joined every stored resource once a record was a few hundred resources).

_PATIENT_IDS = "patient_ids"
_SINCE = "since"
_CACHED = 256  # statement shapes kept per builder


def _by_type(refs: Iterable[Ref]) -> dict[str, set[str]]:
    grouped: dict[str, set[str]] = {}
    for rtype, rid in refs:
        grouped.setdefault(rtype, set()).add(rid)
    return grouped


def _in_subquery(dialect: str, column: ColumnElement[str], ids: Select[str]) -> ColumnElement[bool]:
    """`column IN (ids)`, which PostgreSQL answers by key (`= ANY(ARRAY(...))`) instead of weighing a join."""
    if dialect == "postgresql":
        return column == any_(func.array(ids.scalar_subquery()))
    return column.in_(ids)


def _keyed(
    dialect: str, type_col: ColumnElement[str], id_col: ColumnElement[str], types: tuple[str, ...]
) -> ColumnElement[bool]:
    """`(type, id)` among refs of `types`, each type's ids bound as `ids_<i>`: read by a (type, id) index."""
    return or_(
        false(), *(and_(type_col == inline(t), in_json(dialect, id_col, f"ids_{i}")) for i, t in enumerate(types))
    )


def _keyed_values(refs: Iterable[Ref]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """The types of `refs` (sorted) and the bound values `_keyed` expects for them."""
    grouped = _by_type(refs)
    types = tuple(sorted(grouped))
    return types, {f"ids_{i}": json_list(grouped[t]) for i, t in enumerate(types)}


def _stored(rows: Iterable[Any]) -> list[StoredResource]:
    return [
        StoredResource(rtype, rid, version, updated, False, content.encode() if isinstance(content, str) else content)
        for rtype, rid, version, updated, content in rows
    ]


@functools.lru_cache(maxsize=4)
def _links_statement(dialect: str) -> Select[str, str, str, str]:
    """The references the records `:frontier` hold (by owner), and the links others hold to them: two
    index lookups (an OR each engine answers index by index); the caller keeps the links."""
    ref = sp_reference.c
    return select(ref.res_id, ref.param, ref.target_type, ref.target_id).where(
        or_(
            and_(ref.res_type == inline("Patient"), in_json(dialect, ref.res_id, "frontier")),
            and_(
                ref.res_type == inline("Patient"),
                ref.param == inline("link"),
                in_json(dialect, ref.target_id, "frontier"),
            ),
        )
    )


def linked_patient_ids(uow: UnitOfWork, patient_id: str) -> list[str]:
    """The Patient and every Patient linked to it (either direction, transitively); it comes first.

    One statement per step out (usually two: the records linked, then nothing new).
    """
    stmt = _links_statement(uow.conn.dialect.name)
    seen = {patient_id}
    frontier = {patient_id}
    while frontier:
        found = {
            end
            for source, param, target_type, target in uow.conn.execute(stmt, {"frontier": json_list(frontier)}).all()
            if param == "link" and target_type == "Patient"
            for end in (source, target)
            if end
        }
        frontier = found - seen
        seen |= frontier
    return [patient_id, *sorted(seen - {patient_id})]


def _wanted_members(column: ColumnElement[str], params: EverythingParams | None) -> ColumnElement[bool]:
    """SQL: a referring resource of a type `params` wants (Patients are read on their own)."""
    if params is None:
        return column != inline("Patient")
    if params.types is None:
        return column.notin_([inline("Patient"), *map(inline, sorted(NOT_CARE_RECORD))])
    return column.in_([inline(t) for t in sorted(params.types - {"Patient"})])


def compartment_refs(
    uow: UnitOfWork, patient_ids: Collection[str], compartment: Compartment, params: EverythingParams | None = None
) -> set[Ref]:
    """Resources (other than Patients) in the compartment of any of these Patients; of the types
    `params` wants, when given. Read from the reference index alone."""
    ref = sp_reference.c
    stmt = select(ref.res_type, ref.res_id, ref.param).where(
        ref.target_type == inline("Patient"),
        in_json(uow.conn.dialect.name, ref.target_id, _PATIENT_IDS),
        _wanted_members(ref.res_type, params),
    )
    params_of = compartment.params
    rows = uow.conn.execute(stmt, {_PATIENT_IDS: json_list(patient_ids)}).all()
    return {(rtype, rid) for rtype, rid, param in rows if param in params_of.get(rtype, ())}


@functools.lru_cache(maxsize=_CACHED)
def _record_statement(
    dialect: str, pairs: tuple[tuple[str, tuple[str, ...]], ...], patients: bool, since: bool
) -> CompoundSelect[str, str, int, datetime, Any]:
    """The current versions of the resources of each type in `pairs` that refer to one of the Patients
    `:patient_ids` through one of that type's compartment params; and those Patients, if `patients`.

    One arm per type: an index probe (res_type, param, target_id) for the ids, the rows read by
    primary key. The gateway's own access log and a resource's second reference to the same
    Patient (Observation.subject and .patient) are never read, and no table is scanned.
    """
    ref, r = sp_reference.c, resource.c

    def rows(rtype: str, ids: ColumnElement[bool]) -> Select[str, str, int, datetime, Any]:
        arm = select(r.res_type, r.res_id, r.version_id, r.last_updated, r.content).where(
            r.res_type == inline(rtype), ids, r.deleted == false()
        )
        return arm.where(r.last_updated >= bindparam(_SINCE, type_=DateTime)) if since else arm

    arms = []
    for rtype, names in pairs:
        members = select(ref.res_id).where(
            ref.res_type == inline(rtype),
            or_(*(ref.param == inline(name) for name in names)),
            ref.target_type == inline("Patient"),
            in_json(dialect, ref.target_id, _PATIENT_IDS),
        )
        arms.append(rows(rtype, _in_subquery(dialect, r.res_id, members)))
    if patients:
        arms.append(rows("Patient", in_json(dialect, r.res_id, _PATIENT_IDS)))
    return union_all(*arms)


def record_rows(
    uow: UnitOfWork, patient_ids: Collection[str], compartment: Compartment, params: EverythingParams
) -> list[StoredResource]:
    """The Patients (if wanted) and the wanted members of their compartment, current versions updated
    on or after `params.since`, in one statement; in no set order."""
    pairs = tuple(
        (rtype, names)
        for rtype, names in sorted(compartment.params.items())
        if rtype != "Patient" and params.wants(rtype)
    )
    if not pairs and not params.wants("Patient"):
        return []  # `_type` names no compartment type: nothing is about the person
    stmt = _record_statement(uow.conn.dialect.name, pairs, params.wants("Patient"), params.since is not None)
    values: dict[str, Any] = {_PATIENT_IDS: json_list(patient_ids)}
    if params.since is not None:
        values[_SINCE] = params.since
    return _stored(uow.conn.execute(stmt, values).all())


@functools.lru_cache(maxsize=_CACHED)
def _fetch_statement(dialect: str, types: tuple[str, ...], since: bool) -> Select[str, str, int, datetime, Any]:
    r = resource.c
    stmt = select(r.res_type, r.res_id, r.version_id, r.last_updated, r.content).where(
        _keyed(dialect, r.res_type, r.res_id, types), r.deleted == false()
    )
    return stmt.where(r.last_updated >= bindparam(_SINCE, type_=DateTime)) if since else stmt


def fetch(uow: UnitOfWork, refs: Collection[Ref], since: datetime | None = None) -> list[StoredResource]:
    """Current, non-deleted versions of these resources (updated on or after `since`), in no set order."""
    if not refs:
        return []
    types, values = _keyed_values(refs)
    if since is not None:
        values[_SINCE] = since
    return _stored(uow.conn.execute(_fetch_statement(uow.conn.dialect.name, types, since is not None), values).all())


@functools.lru_cache(maxsize=_CACHED)
def _referrers_statement(dialect: str, target_type: str, source_types: tuple[str, ...]) -> Select[str, str]:
    ref = sp_reference.c
    return select(ref.res_type, ref.res_id).where(
        ref.target_type == inline(target_type),
        in_json(dialect, ref.target_id, "target_ids"),
        or_(false(), *(ref.res_type == inline(t) for t in source_types)),
    )


def _referrers(
    uow: UnitOfWork, target_type: str, target_ids: Collection[str], source_types: Collection[str]
) -> set[Ref]:
    stmt = _referrers_statement(uow.conn.dialect.name, target_type, tuple(sorted(source_types)))
    return {(t, i) for t, i in uow.conn.execute(stmt, {"target_ids": json_list(target_ids)}).all()}


@functools.lru_cache(maxsize=_CACHED)
def _targets_statement(
    dialect: str, types: tuple[str, ...], params: tuple[str, ...] | None, outside: tuple[str, ...] | None
) -> Select[str, str]:
    ref = sp_reference.c
    stmt = select(ref.target_type, ref.target_id).where(
        _keyed(dialect, ref.res_type, ref.res_id, types), ref.target_type.is_not(None)
    )
    if params is not None:
        stmt = stmt.where(or_(false(), *(ref.param == inline(p) for p in params)))
    if outside is not None:
        stmt = stmt.where(ref.target_type.notin_([inline(t) for t in outside]))
    return stmt


def _targets(
    uow: UnitOfWork,
    sources: Collection[Ref],
    params: Collection[str] | None = None,
    outside: Collection[str] | None = None,
) -> set[Ref]:
    """What these resources refer to (literal, local references): through the named params only,
    and to types not in `outside`, when given."""
    if not sources:
        return set()
    types, values = _keyed_values(sources)
    stmt = _targets_statement(
        uow.conn.dialect.name,
        types,
        tuple(sorted(params)) if params is not None else None,
        tuple(sorted(outside)) if outside is not None else None,
    )
    return {(t, i) for t, i in uow.conn.execute(stmt, values).all() if t and i}


@functools.lru_cache(maxsize=4)
def _provenance_statement(dialect: str) -> Select[str, str, str]:
    """Provenance `target` rows by target id alone: the lookup index's order (type, param, id, type)."""
    ref = sp_reference.c
    return select(ref.res_id, ref.target_type, ref.target_id).where(
        ref.res_type == inline("Provenance"),
        ref.param == inline("target"),
        in_json(dialect, ref.target_id, "target_ids"),
    )


def provenance_refs(uow: UnitOfWork, targets: Collection[Ref]) -> set[Ref]:
    """Provenance resources whose `target` is one of these resources."""
    if not targets:
        return set()
    wanted = set(targets)
    rows = uow.conn.execute(
        _provenance_statement(uow.conn.dialect.name), {"target_ids": json_list({rid for _, rid in wanted})}
    ).all()
    return {("Provenance", rid) for rid, target_type, target_id in rows if (target_type, target_id) in wanted}


@functools.lru_cache(maxsize=_CACHED)
def _dates_statement(dialect: str, rtype: str) -> Select[str, datetime, datetime]:
    d = sp_date.c
    return select(d.res_id, d.low, d.high).where(
        d.res_type == inline(rtype), d.param == inline(CLINICAL_DATE_PARAMS[rtype]), in_json(dialect, d.res_id, "ids")
    )


def care_dates(uow: UnitOfWork, refs: Collection[Ref]) -> dict[Ref, list[tuple[datetime, datetime]]]:
    """The indexed care-date ranges of each resource whose type has one (see CLINICAL_DATE_PARAMS)."""
    found: dict[Ref, list[tuple[datetime, datetime]]] = {}
    for rtype, ids in _by_type(r for r in refs if r[0] in CLINICAL_DATE_PARAMS).items():
        rows = uow.conn.execute(_dates_statement(uow.conn.dialect.name, rtype), {"ids": json_list(ids)}).all()
        for rid, low, high in rows:
            found.setdefault((rtype, rid), []).append((low, high))
    return found


# -- pure steps ------------------------------------------------------------------------------------


def _overlaps(ranges: list[tuple[datetime, datetime]], start: datetime | None, end: datetime | None) -> bool:
    return any((end is None or low <= end) and (start is None or high >= start) for low, high in ranges)


def _business_keys(stored: StoredResource) -> tuple[str, ...]:
    if stored.content is None:
        return ()
    body = orjson.loads(stored.content)
    return tuple(
        f"{i['system']}|{i['value']}"
        for i in body.get("identifier") or []
        if isinstance(i, dict) and i.get("system") and i.get("value")
    )


class BusinessKeys:
    """The identifiers (system|value) of stored versions, remembered: a stored version never changes,
    so a record read again parses no JSON for its de-duplication. One per store (ids are only
    unique within a database); forgotten wholesale when full. Tuples of strings, which the garbage
    collector stops tracking, so a large memory adds nothing to its passes."""

    LIMIT = 200_000

    def __init__(self) -> None:
        self._known: dict[tuple[str, str, int], tuple[str, ...]] = {}

    def of(self, stored: StoredResource) -> tuple[str, ...]:
        key = (stored.type, stored.id, stored.version_id)
        found = self._known.get(key)
        if found is None:
            if len(self._known) >= self.LIMIT:
                self._known.clear()
            found = self._known[key] = _business_keys(stored)
        return found


_KEYS_BY_STORE: weakref.WeakKeyDictionary[Store, BusinessKeys] = weakref.WeakKeyDictionary()


def business_keys(store: Store) -> BusinessKeys:
    known = _KEYS_BY_STORE.get(store)
    if known is None:
        known = _KEYS_BY_STORE[store] = BusinessKeys()  # two threads at once: one is kept, both correct
    return known


def deduplicate(
    rows: list[StoredResource], keys_of: Callable[[StoredResource], Iterable[str]] = _business_keys
) -> list[StoredResource]:
    """One copy of each fact: same type and a shared identifier (system|value) -> keep the newest.

    Patients are kept whole (each source's record of the person belongs in the answer).
    """
    claimed: set[tuple[str, str]] = set()
    kept: set[Ref] = set()
    for stored in sorted(rows, key=lambda s: (s.last_updated, s.id), reverse=True):
        keys = set() if stored.type == "Patient" else {(stored.type, k) for k in keys_of(stored)}
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


# -- the two record views ------------------------------------------------------------------------


def _complete(
    uow: UnitOfWork,
    core: list[StoredResource],
    params: EverythingParams,
    visible: Visible,
    compartment: Compartment,
    focus: StoredResource | None = None,
) -> list[StoredResource]:
    """Consent, de-duplication, then Provenance and supporting resources of what is kept.

    `focus`: decided already but not audited; decided (from this transaction's memo) and audited
    with the record, and left out of the answer unless the record holds it.
    """
    if focus is not None and not any(s.type == focus.type and s.id == focus.id for s in core):
        shown = [s for s in visible(uow, [focus, *core]) if s is not focus]
    else:
        shown = visible(uow, core)
    kept = deduplicate(shown, business_keys(uow.store).of)
    kept_refs = {(s.type, s.id) for s in kept}
    provenance = provenance_refs(uow, kept_refs)
    # References to types outside the compartment (Practitioner, Organization, Location …), of what
    # is kept and of its Provenance: those are what $everything brings along.
    supporting = _targets(uow, kept_refs | provenance, outside=sorted(compartment.params))
    extra_refs = {r for r in (provenance | supporting) - kept_refs if params.wants(r[0])}
    extra = fetch(uow, extra_refs, params.since)
    return [*kept, *visible(uow, sorted(extra, key=lambda s: (s.type, s.id)))]


def _visible_focus(
    uow: UnitOfWork, rtype: str, rid: str, visible: Visible, may_see: MaySee | None
) -> tuple[StoredResource, StoredResource | None]:
    """The operation's focus (404 when hidden), and the focus again when it is still to be audited:
    with `may_see`, a visible focus is audited with the record it opens (one AuditEvent per
    request, `_complete`); a hidden one is audited here, as refused."""
    stored = uow.read(rtype, rid)  # not-found 404 / gone 410
    if may_see is not None and may_see(uow, stored):
        return stored, stored
    if not visible(uow, [stored]):
        raise not_found(f"{rtype}/{rid}")  # hidden looks like absent: no oracle
    return stored, None


def patient_everything(
    uow: UnitOfWork,
    patient_id: str,
    params: EverythingParams,
    visible: Visible,
    *,
    compartment: Compartment | None = None,
    linked: Callable[[list[str]], None] | None = None,
    may_see: MaySee | None = None,
) -> list[StoredResource]:
    """The whole unified record of one person, ordered (asked-for Patient, linked Patients, the rest).

    Raises FhirError not-found / gone when the Patient is absent, deleted or hidden from the caller.
    `linked`, when given, is told the linked Patients' ids before anything is decided (the consent
    guard then reads all their policy inputs with the focus's); nothing is shown before the focus
    itself is found visible.
    """
    compartment = compartment or default_compartment()
    patient_ids = linked_patient_ids(uow, patient_id)
    if linked is not None:
        linked(patient_ids)
    _, unaudited = _visible_focus(uow, "Patient", patient_id, visible, may_see)
    core = record_rows(uow, patient_ids, compartment, params)
    if params.start is not None or params.end is not None:
        dates = care_dates(uow, [(s.type, s.id) for s in core if s.type != "Patient"])
        core = [
            s for s in core if (s.type, s.id) not in dates or _overlaps(dates[(s.type, s.id)], params.start, params.end)
        ]
    core.sort(key=lambda s: (s.type, s.id))
    rows = _complete(uow, core, params, visible, compartment, unaudited)
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
    may_see: MaySee | None = None,
) -> list[StoredResource]:
    """One episode of case management: the episode, its person, care manager, teams and their members,
    and the CarePlans / Encounters / Tasks / Communications / QuestionnaireResponses that refer to
    the episode or (dated within the episode's period) to the person.

    Raises FhirError not-found / gone when the episode is absent, deleted or hidden from the caller.
    """
    compartment = compartment or default_compartment()
    episode, unaudited = _visible_focus(uow, "EpisodeOfCare", episode_id, visible, may_see)
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
    core = sorted(fetch(uow, refs, params.since), key=lambda s: (s.type, s.id))
    rows = _complete(uow, core, params, visible, compartment, unaudited)
    return _order(rows, [("EpisodeOfCare", episode_id), *(("Patient", p) for p in patient_ids)])
