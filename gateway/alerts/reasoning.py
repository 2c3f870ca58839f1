"""Why an alert fired, kept on the alert itself so the case manager can see it.

A case manager who gets "Mrs X presented at A&E" at 2 a.m. must be able to check it: which
message or resource triggered it, which presentation rule fired, how sure the identity match was,
and which episode made the person case-managed. That record rides on the alert `Communication` as
one complex extension (`EXT_ALERT_REASONING`), so it is returned wherever the Communication is
(read, search, `$everything`, subscription payloads) under the same consent decision, needs no
extra resource type, and cannot drift from the alert it explains. `from_extension` reads it back
and `explain` renders it as one sentence for the ward board.

Sub-extensions (relative urls, per FHIR complex-extension convention):

| url                  | value            | meaning                                                  |
|----------------------|------------------|----------------------------------------------------------|
| `rule`               | valueString      | presentation rule, e.g. `adt:A04`, `class:EMER`          |
| `kind`               | valueCode        | presentation kind, e.g. `ae-attendance`                  |
| `source-event`       | valueCode        | HL7 v2 trigger, when the source was a v2 message         |
| `source-message`     | valueString      | intake receipt / message id that carried the data        |
| `resource`           | valueReference   | the (versioned) Encounter that was classified            |
| `match-grade`        | valueCode        | identity match grade: certain / probable / possible      |
| `presenting-patient` | valueReference   | the Patient record the presenting service used           |
| `episode`            | valueReference   | the EpisodeOfCare that makes the person case-managed     |
| `ward`               | valueString      | ward id the episode places the person on                 |
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.alerts.registry import CaseManagedEntry
from gateway.alerts.rules import KIND_LABELS, Presentation
from gateway.codes import EXT_BASE
from gateway.types import JSON

EXT_ALERT_REASONING = f"{EXT_BASE}/alert-reasoning"
MATCH_GRADES = frozenset({"certain", "probable", "possible"})

_VALUE_TYPES: dict[str, str] = {
    "rule": "valueString",
    "kind": "valueCode",
    "source-event": "valueCode",
    "source-message": "valueString",
    "resource": "valueReference",
    "match-grade": "valueCode",
    "presenting-patient": "valueReference",
    "episode": "valueReference",
    "ward": "valueString",
}


@dataclass(frozen=True)
class AlertReasoning:
    rule: str
    kind: str
    resource: str
    match_grade: str
    episode: str
    ward: str
    presenting_patient: str | None = None
    source_event: str | None = None
    source_message: str | None = None


def build_reasoning(
    presentation: Presentation,
    entry: CaseManagedEntry,
    *,
    match_grade: str,
    source_message: str | None = None,
    resource_version: str | None = None,
) -> AlertReasoning:
    """Collect the facts behind one alert; `resource_version` pins the Encounter version classified."""
    if match_grade not in MATCH_GRADES:
        raise ValueError(f"match grade must be one of {sorted(MATCH_GRADES)}")
    resource = presentation.encounter_ref
    if resource_version:
        resource = f"{resource}/_history/{resource_version}"
    return AlertReasoning(
        rule=presentation.rule,
        kind=presentation.kind,
        resource=resource,
        match_grade=match_grade,
        episode=entry.episode_ref,
        ward=entry.ward_id,
        presenting_patient=presentation.subject_ref,
        source_event=presentation.source_event,
        source_message=source_message,
    )


def _field_values(reasoning: AlertReasoning) -> dict[str, str | None]:
    return {
        "rule": reasoning.rule,
        "kind": reasoning.kind,
        "source-event": reasoning.source_event,
        "source-message": reasoning.source_message,
        "resource": reasoning.resource,
        "match-grade": reasoning.match_grade,
        "presenting-patient": reasoning.presenting_patient,
        "episode": reasoning.episode,
        "ward": reasoning.ward,
    }


def to_extension(reasoning: AlertReasoning) -> JSON:
    parts: list[JSON] = []
    for url, value in _field_values(reasoning).items():
        if value is None:
            continue
        value_type = _VALUE_TYPES[url]
        parts.append({"url": url, value_type: {"reference": value} if value_type == "valueReference" else value})
    return {"url": EXT_ALERT_REASONING, "extension": parts}


def from_extension(resource: JSON) -> AlertReasoning | None:
    """Read the reasoning back from a Communication (or anything carrying the extension)."""
    for ext in resource.get("extension") or []:
        if ext.get("url") != EXT_ALERT_REASONING:
            continue
        values: dict[str, str] = {}
        for part in ext.get("extension") or []:
            value = part.get(_VALUE_TYPES.get(part.get("url", ""), ""))
            if isinstance(value, dict):
                value = value.get("reference")
            if isinstance(value, str):
                values[part["url"]] = value
        return AlertReasoning(
            rule=values.get("rule", ""),
            kind=values.get("kind", ""),
            resource=values.get("resource", ""),
            match_grade=values.get("match-grade", ""),
            episode=values.get("episode", ""),
            ward=values.get("ward", ""),
            presenting_patient=values.get("presenting-patient"),
            source_event=values.get("source-event"),
            source_message=values.get("source-message"),
        )
    return None


def explain(reasoning: AlertReasoning) -> str:
    """One sentence for the ward board; ids only, no personal data."""
    via = f"HL7 v2 {reasoning.source_event}" if reasoning.source_event else "a FHIR write"
    message = f" (message {reasoning.source_message})" if reasoning.source_message else ""
    return (
        f"{KIND_LABELS.get(reasoning.kind, reasoning.kind)} detected by rule '{reasoning.rule}' "
        f"from {via}{message} on {reasoning.resource}; patient matched as '{reasoning.match_grade}' "
        f"to {reasoning.episode} on ward {reasoning.ward}."
    )
