"""Is this Encounter write a presentation (someone turning up somewhere), a retraction, or neither?

Pure: one Encounter version (and the version before it, if any) plus the HL7 v2 trigger event that
produced it, in; a `Presentation`, a `Retraction` or None out. Whether the person is case-managed
is not decided here (that is the registry's job, after identity matching).

Rules, in the order they are tried (the first that fires names the `rule`):

1. status `cancelled` / `entered-in-error`, or trigger A11 (cancel admit/visit) or A38 (cancel
   pre-admit) -> `Retraction`. A13 (cancel discharge) is not a retraction: the person is still
   there, so the encounter simply stays a presentation with the same dedupe key.
2. status `finished` -> None: a discharge, or a late message about a past visit, is not news.
3. serviceType NHS 111 / out-of-hours (SERVICE_TYPE_SYSTEM) -> kind `111` / `out-of-hours`,
   whatever the class (community OOH contacts are often class AMB or HH).
4. trigger A06/A07 (class change), or a class different from the previous version's, when the new
   class is a presentation class -> kind `class-change`.
5. trigger A01 -> `admission`, A05 -> `pre-admission`, A04 -> `ae-attendance` (A04 with an
   explicit non-presentation class, e.g. an outpatient clinic registration, is not one).
6. class (v3 ActCode) EMER -> `ae-attendance`, IMP/ACUTE/NONAC/SS -> `admission`,
   OBSENC -> `observation`, PRENC -> `pre-admission`.

Dedupe key: a hash of the encounter's identity (`Encounter/<id>`, else its first identifier), so
every repeated or updated message about one visit carries the same key and alerts once, while a
re-presentation after discharge is a new Encounter and so a new key. The alert resources' ids are
derived from it (`gateway.alerts.content`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from gateway.codes import CANONICAL_BASE, NHS_111, OUT_OF_HOURS, SERVICE_TYPE_SYSTEM, V3_ACT_CODE
from gateway.types import JSON

PRESENTATION_KEY_SYSTEM = f"{CANONICAL_BASE}/Id/presentation-key"
"""Identifier system of the dedupe key on every alert resource (Flag, Communication, Task)."""

# Encounter.class (v3 ActCode) -> presentation kind. The single table of presentation classes.
CLASS_KINDS: dict[str, str] = {
    "EMER": "ae-attendance",
    "IMP": "admission",
    "ACUTE": "admission",
    "NONAC": "admission",
    "SS": "admission",
    "OBSENC": "observation",
    "PRENC": "pre-admission",
}
INPATIENT_CLASSES = frozenset({"IMP", "ACUTE", "NONAC", "SS"})
SERVICE_TYPE_KINDS: dict[str, str] = {NHS_111: "111", OUT_OF_HOURS: "out-of-hours"}
EVENT_KINDS: dict[str, str] = {"A01": "admission", "A04": "ae-attendance", "A05": "pre-admission"}
CLASS_CHANGE_EVENTS = frozenset({"A06", "A07"})
RETRACTING_EVENTS = frozenset({"A11", "A38"})
RETRACTING_STATUSES = frozenset({"cancelled", "entered-in-error"})

KIND_LABELS: dict[str, str] = {
    "ae-attendance": "A&E attendance",
    "admission": "hospital admission",
    "pre-admission": "planned admission (pre-admission)",
    "observation": "observation stay",
    "out-of-hours": "out-of-hours contact",
    "111": "NHS 111 contact",
    "class-change": "change of encounter class",
}


@dataclass(frozen=True)
class Presentation:
    """A person presented somewhere; everything the alert content needs about the event."""

    kind: str
    rule: str
    encounter_ref: str
    subject_ref: str | None
    organisation_ref: str | None
    organisation_display: str | None
    time: str | None
    is_admission: bool
    dedupe_key: str
    encounter_class: str | None
    source_event: str | None

    @property
    def label(self) -> str:
        return KIND_LABELS.get(self.kind, self.kind)


@dataclass(frozen=True)
class Retraction:
    """An earlier presentation did not happen (cancel / entered in error): undo its alert."""

    encounter_ref: str
    dedupe_key: str
    reason: str


def dedupe_key(encounter: JSON) -> str:
    """Stable per visit: same Encounter (any version, any message) -> same key."""
    if encounter.get("id"):
        basis = f"Encounter/{encounter['id']}"
    else:
        ident = (encounter.get("identifier") or [{}])[0]
        basis = f"{ident.get('system', '')}|{ident.get('value', '')}"
        if basis == "|":
            raise ValueError("an Encounter needs an id or an identifier to be deduplicated")
    return hashlib.sha256(basis.encode()).hexdigest()[:32]


def encounter_class(encounter: JSON | None) -> str | None:
    if not encounter:
        return None
    coding = encounter.get("class") or {}
    if coding.get("system") not in (None, V3_ACT_CODE):
        return None
    code = coding.get("code")
    return str(code) if code else None


def _service_kind(encounter: JSON) -> str | None:
    concept = encounter.get("serviceType") or {}
    for coding in concept.get("coding") or []:
        if coding.get("system") == SERVICE_TYPE_SYSTEM and coding.get("code") in SERVICE_TYPE_KINDS:
            return SERVICE_TYPE_KINDS[coding["code"]]
    return None


def _encounter_ref(encounter: JSON) -> str:
    if encounter.get("id"):
        return f"Encounter/{encounter['id']}"
    ident = (encounter.get("identifier") or [{}])[0]
    return f"Encounter?identifier={ident.get('system', '')}|{ident.get('value', '')}"


def _classify(encounter: JSON, previous: JSON | None, event: str | None, cls: str | None) -> tuple[str, str] | None:
    service = _service_kind(encounter)
    if service:
        return service, f"service-type:{service}"
    old = encounter_class(previous)
    if cls in CLASS_KINDS and (event in CLASS_CHANGE_EVENTS or (previous is not None and old != cls)):
        return "class-change", f"class-change:{old or '?'}->{cls}"
    if event in EVENT_KINDS and (cls is None or cls in CLASS_KINDS):
        return EVENT_KINDS[event], f"adt:{event}"
    if cls in CLASS_KINDS:
        return CLASS_KINDS[cls], f"class:{cls}"
    return None


def detect_presentation(
    encounter: JSON, previous_version: JSON | None = None, *, source_event: str | None = None
) -> Presentation | Retraction | None:
    """Classify one Encounter create/update; `source_event` is the HL7 v2 trigger (e.g. "A04")."""
    event = source_event.upper() if source_event else None
    status = encounter.get("status")
    key = dedupe_key(encounter)
    ref = _encounter_ref(encounter)
    if status in RETRACTING_STATUSES:
        return Retraction(ref, key, f"status:{status}")
    if event in RETRACTING_EVENTS:
        return Retraction(ref, key, f"adt:{event}")
    if status == "finished":
        return None
    cls = encounter_class(encounter)
    found = _classify(encounter, previous_version, event, cls)
    if found is None:
        return None
    kind, rule = found
    provider = encounter.get("serviceProvider") or {}
    return Presentation(
        kind=kind,
        rule=rule,
        encounter_ref=ref,
        subject_ref=(encounter.get("subject") or {}).get("reference"),
        organisation_ref=provider.get("reference"),
        organisation_display=provider.get("display"),
        time=(encounter.get("period") or {}).get("start") or (encounter.get("meta") or {}).get("lastUpdated"),
        is_admission=cls in INPATIENT_CLASSES or (event == "A01" and cls is None),
        dedupe_key=key,
        encounter_class=cls,
        source_event=event,
    )


def during_episode(presentation_time: str | None, episode_since: str | None) -> bool:
    """Whether a presentation happened while the person was case-managed.

    History loaded after enrolment (an old A&E visit arriving from a backlog) must not alert:
    only presentations on or after the episode's start do. Unknown times count as during.
    """
    if not presentation_time or not episode_since:
        return True
    from gateway.store.search.kinds import date_range

    try:
        return date_range(presentation_time)[1] >= date_range(episode_since)[0]
    except ValueError:
        return True
