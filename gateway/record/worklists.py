"""The case-management worklists from the store: gathers inputs in bulk, hands them to the pure modules.

`case_finding`, `caseload`, `rounds` and `review` decide; this module only loads what they need
(one query per resource type, never one per person) and writes what case-finding produces.

People: Patient records joined by `Patient.link` (either direction) are one person. The person's
representative record (the one the RiskAssessment is about) is the record nobody has replaced:
an active Patient without a `replaced-by` link, lowest id first, so reruns pick the same one.

RiskAssessments are written idempotently: each carries the identifier
`RISK_ASSESSMENT_ID_SYSTEM|<representative patient id>` and a rerun updates that resource (a
conditional update by identifier) instead of adding another; an unchanged score writes nothing.
Runs never overlap: each takes the `case-finding` lock for its transaction (PostgreSQL: an advisory
lock, across every gateway process; SQLite: the write lock), so a second run starts from the
first one's assessments instead of adding its own beside them.

Rounds data contract: a round (a call, visit or review by the ward team) is recorded as an
`Encounter` whose `episodeOfCare` references the case-management episode; its `period.start`
date is the round date. Cancelled and entered-in-error Encounters do not count.

`visible` decides what a caller may see: the worklists name only people / episodes / plans it
lets through. Scoring itself reads the whole population (it is the gateway's own work, like an
index), so the points are the same whoever asks.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time

import orjson
from sqlalchemy import false, select

from gateway.alerts.registry import CaseManagedEntry, case_managed_entry, ref_id
from gateway.codes import CANONICAL_BASE
from gateway.consent.compartment import Compartment, default_compartment
from gateway.fhir.errors import not_found
from gateway.record.case_finding import (
    DEFAULT_WEIGHTS,
    EXT_RISK_SCORE,
    RISK_PROBABILITY,
    RiskScore,
    RiskWeights,
    WorklistItem,
    risk_assessment,
    score_person,
    worklist,
)
from gateway.record.caseload import Caseload, CaseloadPolicy, caseloads
from gateway.record.everything import Visible
from gateway.record.review import ReviewItem, close_episode, due_for_review
from gateway.record.rounds import RoundItem, RoundPolicy, round_list
from gateway.store.api import StoredResource, UnitOfWork
from gateway.store.locks import hold_until_commit
from gateway.store.schema import resource, sp_reference
from gateway.types import JSON

RISK_ASSESSMENT_ID_SYSTEM = f"{CANONICAL_BASE}/Id/case-finding-risk-assessment"
CASE_FINDING_LOCK = "case-finding:risk-assessments"
SCORING_TYPES = ("Encounter", "Condition", "EpisodeOfCare", "Observation", "RelatedPerson")
VOID_STATUSES = frozenset({"cancelled", "entered-in-error"})


@dataclass(frozen=True)
class Person:
    """One person: their representative Patient record and every record linked to it."""

    patient_id: str
    patient_ids: tuple[str, ...]


@dataclass(frozen=True)
class CaseFindingResult:
    scores: list[RiskScore]
    worklist: list[WorklistItem]
    people: dict[str, Person]  # by representative patient id
    assessments: dict[str, str]  # representative patient id -> RiskAssessment id
    written: int  # RiskAssessments created or changed by this run


# -- bulk loading --------------------------------------------------------------------------------


def load_all(uow: UnitOfWork, rtypes: Iterable[str]) -> list[StoredResource]:
    """Every live resource of these types, in one query (ordered by type and id)."""
    r = resource.c
    rows = uow.conn.execute(
        select(resource).where(r.res_type.in_(list(rtypes)), r.deleted == false()).order_by(r.res_type, r.res_id)
    )
    return [
        StoredResource(
            row.res_type,
            row.res_id,
            row.version_id,
            row.last_updated,
            False,
            row.content.encode() if isinstance(row.content, str) else row.content,
        )
        for row in rows
    ]


def patient_links(uow: UnitOfWork) -> list[tuple[str, str]]:
    """Every Patient -> Patient link edge in the index."""
    ref = sp_reference.c
    rows = uow.conn.execute(
        select(ref.res_id, ref.target_id).where(
            ref.res_type == "Patient", ref.param == "link", ref.target_type == "Patient"
        )
    )
    return [(row.res_id, row.target_id) for row in rows if row.target_id]


def _replaced(patient: JSON) -> bool:
    return patient.get("active") is False or any(
        link.get("type") == "replaced-by" for link in patient.get("link") or []
    )


def group_people(
    patient_ids: Iterable[str], links: Iterable[tuple[str, str]], patients: Mapping[str, JSON]
) -> list[Person]:
    """Linked Patient records as people (union-find over link edges); pure."""
    parent: dict[str, str] = {p: p for p in patient_ids}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in links:
        if a in parent and b in parent:
            ra, rb = root(a), root(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    groups: dict[str, list[str]] = {}
    for p in parent:
        groups.setdefault(root(p), []).append(p)
    people = []
    for members in groups.values():
        members.sort()
        rep = min(members, key=lambda m: (_replaced(patients.get(m, {})), m))
        people.append(Person(rep, tuple(members)))
    return sorted(people, key=lambda p: p.patient_id)


def load_people(uow: UnitOfWork) -> tuple[list[Person], dict[str, JSON]]:
    patients = {s.id: s.json() for s in load_all(uow, ["Patient"])}
    return group_people(patients, patient_links(uow), patients), patients


def _person_of(people: Iterable[Person]) -> dict[str, Person]:
    return {pid: person for person in people for pid in person.patient_ids}


def case_managed_entries(episodes: Iterable[JSON], now: datetime | None) -> list[CaseManagedEntry]:
    return [e for ep in episodes if (e := case_managed_entry(ep, now=now)) is not None]


def risk_assessments_by_patient(stored: Iterable[StoredResource]) -> dict[str, JSON]:
    """The case-finding RiskAssessment of each representative patient id (by its identifier)."""
    found: dict[str, JSON] = {}
    for s in stored:
        body = s.json()
        for ident in body.get("identifier") or []:
            if ident.get("system") == RISK_ASSESSMENT_ID_SYSTEM and ident.get("value"):
                found[str(ident["value"])] = body
    return found


def _score_points(assessment: JSON) -> int | None:
    for ext in assessment.get("extension") or []:
        if ext.get("url") == EXT_RISK_SCORE and isinstance(ext.get("valueInteger"), int):
            points: int = ext["valueInteger"]
            return points
    return None


def _band(assessment: JSON) -> str | None:
    for prediction in assessment.get("prediction") or []:
        for coding in (prediction.get("qualitativeRisk") or {}).get("coding") or []:
            if coding.get("system") == RISK_PROBABILITY:
                return str(coding.get("code"))
    return None


def risk_by_patient(uow: UnitOfWork) -> tuple[dict[str, int], set[str]]:
    """Each Patient id's latest case-finding points (spread across linked records), and the high-risk ids."""
    people, _ = load_people(uow)
    person_of = _person_of(people)
    points: dict[str, int] = {}
    high: set[str] = set()
    for rep, assessment in risk_assessments_by_patient(load_all(uow, ["RiskAssessment"])).items():
        person = person_of.get(rep, Person(rep, (rep,)))
        value = _score_points(assessment)
        for pid in person.patient_ids:
            if value is not None:
                points[pid] = value
            if _band(assessment) == "high":
                high.add(pid)
    return points, high


# -- case-finding --------------------------------------------------------------------------------


def _comparable(assessment: JSON) -> bytes:
    """What makes two assessments different; the run time and server meta do not."""
    body = {k: v for k, v in assessment.items() if k not in ("id", "meta", "occurrenceDateTime")}
    return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def _members_by_patient(rows: Iterable[StoredResource], compartment: Compartment) -> dict[str, list[JSON]]:
    found: dict[str, list[JSON]] = {}
    for s in rows:
        body = s.json()
        for pid in compartment.patients_of(body):
            found.setdefault(pid, []).append(body)
    return found


def _demographics(person: Person, patients: Mapping[str, JSON]) -> JSON:
    """The representative record, with a birth date taken from a linked record when it has none."""
    patient = dict(patients[person.patient_id])
    if not patient.get("birthDate"):
        known = [patients[p]["birthDate"] for p in person.patient_ids if patients[p].get("birthDate")]
        if known:
            patient["birthDate"] = known[0]
    return patient


def run_case_finding(
    uow: UnitOfWork,
    *,
    now: datetime,
    threshold: int,
    weights: RiskWeights = DEFAULT_WEIGHTS,
    visible: Visible | None = None,
    compartment: Compartment | None = None,
) -> CaseFindingResult:
    """Score everyone, write one RiskAssessment per person, and rank those over `threshold`.

    `uow` must be a writer. The worklist leaves out people already case-managed and, when
    `visible` is given, people whose representative Patient the caller may not see. Waits for a
    run in progress elsewhere to commit before reading anything.
    """
    hold_until_commit(uow.conn, [CASE_FINDING_LOCK])
    compartment = compartment or default_compartment()
    people, patients = load_people(uow)
    members = _members_by_patient(load_all(uow, SCORING_TYPES), compartment)
    existing = risk_assessments_by_patient(load_all(uow, ["RiskAssessment"]))
    scores: list[RiskScore] = []
    assessments: dict[str, str] = {}
    written = 0
    for person in people:
        resources = {
            (r["resourceType"], r["id"]): r for pid in person.patient_ids for r in members.get(pid, ())
        }.values()
        score = score_person(_demographics(person, patients), resources, now=now, weights=weights)
        scores.append(score)
        assessment = risk_assessment(score, now=now)
        assessment["identifier"] = [{"system": RISK_ASSESSMENT_ID_SYSTEM, "value": person.patient_id}]
        old = existing.get(person.patient_id)
        if old is None:
            assessments[person.patient_id] = uow.create(assessment).id
            written += 1
        elif _comparable(old) != _comparable(assessment):
            assessments[person.patient_id] = uow.update({**assessment, "id": old["id"]})[0].id
            written += 1
        else:
            assessments[person.patient_id] = str(old["id"])
    episodes = [s.json() for s in load_all(uow, ["EpisodeOfCare"])]
    managed_ids = {e.patient_id for e in case_managed_entries(episodes, now)}
    managed = {p.patient_id for p in people if managed_ids & set(p.patient_ids)}
    items = worklist(scores, managed, threshold)
    if visible is not None and items:
        shown = {s.id for s in visible(uow, uow.fetch_many(("Patient", i.patient_id) for i in items))}
        items = [i for i in items if i.patient_id in shown]
    return CaseFindingResult(scores, items, {p.patient_id: p for p in people}, assessments, written)


# -- caseloads, rounds, reviews, closure -----------------------------------------------------------


def _shown(uow: UnitOfWork, rows: list[StoredResource], visible: Visible | None) -> list[StoredResource]:
    return visible(uow, rows) if visible is not None else rows


def load_caseloads(
    uow: UnitOfWork, policy: CaseloadPolicy = CaseloadPolicy(), visible: Visible | None = None
) -> list[Caseload]:
    """Per case manager: active case-managed episodes and the high-risk share (from stored scores)."""
    episodes = [s.json() for s in _shown(uow, load_all(uow, ["EpisodeOfCare"]), visible)]
    _, high = risk_by_patient(uow)
    return caseloads(episodes, high, policy)


def last_rounds(uow: UnitOfWork, entries: Collection[CaseManagedEntry], today: date) -> dict[str, date]:
    """The latest round date (up to `today`) of each case-managed patient, from episode Encounters."""
    by_episode = {e.episode_id: e.patient_id for e in entries}
    if not by_episode:
        return {}
    ref = sp_reference.c
    encounter_ids: set[str] = set()
    ids = sorted(by_episode)
    for start in range(0, len(ids), 500):
        rows = uow.conn.execute(
            select(ref.res_id, ref.target_id).where(
                ref.res_type == "Encounter",
                ref.param == "episode-of-care",
                ref.target_type == "EpisodeOfCare",
                ref.target_id.in_(ids[start : start + 500]),
            )
        )
        encounter_ids.update(row.res_id for row in rows)
    found: dict[str, date] = {}
    for stored in uow.fetch_many(("Encounter", i) for i in sorted(encounter_ids)):
        enc = stored.json()
        when = (enc.get("period") or {}).get("start")
        if enc.get("status") in VOID_STATUSES or not when:
            continue
        try:
            day = date.fromisoformat(str(when)[:10])
        except ValueError:
            continue
        for ep in enc.get("episodeOfCare") or []:
            patient = by_episode.get(ref_id(ep.get("reference")) or "")
            if patient and day <= today and (patient not in found or found[patient] < day):
                found[patient] = day
    return found


def load_round_list(
    uow: UnitOfWork,
    *,
    ward_id: str,
    today: date,
    policy: RoundPolicy = RoundPolicy(),
    visible: Visible | None = None,
) -> list[RoundItem]:
    """Today's round list for one ward."""
    end_of_day = datetime.combine(today, time.max, tzinfo=UTC)
    episodes = [s.json() for s in _shown(uow, load_all(uow, ["EpisodeOfCare"]), visible)]
    entries = [e for e in case_managed_entries(episodes, end_of_day) if e.ward_id == ward_id]
    points, _ = risk_by_patient(uow)
    return round_list(
        entries,
        ward_id=ward_id,
        today=today,
        risk_points=points,
        last_rounds=last_rounds(uow, entries, today),
        policy=policy,
    )


def load_reviews_due(uow: UnitOfWork, *, today: date, visible: Visible | None = None) -> list[ReviewItem]:
    """CarePlans whose review date is today or past."""
    plans = [s.json() for s in _shown(uow, load_all(uow, ["CarePlan"]), visible)]
    return due_for_review(plans, today=today)


def close_episode_by_id(
    uow: UnitOfWork, episode_id: str, reason: str | JSON, *, now: datetime, visible: Visible | None = None
) -> StoredResource:
    """Close an EpisodeOfCare (a new version) with its reason; `uow` must be a writer.

    Raises FhirError: not-found (absent or hidden), gone (deleted), conflict (already closed).
    """
    current = uow.get("EpisodeOfCare", episode_id, for_update=True)
    if current is None or (not current.deleted and not _shown(uow, [current], visible)):
        raise not_found(f"EpisodeOfCare/{episode_id}")
    closed = close_episode(current.json(), reason, now)
    stored, _ = uow.update(closed, if_match=current.version_id)
    return stored
