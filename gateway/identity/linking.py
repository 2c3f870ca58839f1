"""What to do with a newly arrived person record, given how it matched: link, link and ask, or create.

- one certain match → link to it;
- a probable match, or several certain ones (the register itself holds a duplicate) → link
  provisionally to the best and raise a review Task for a person, with the explanation;
- nothing better than possible → a new person.

Pure: no store, no clock (`now` is passed in). Record ids are Patient logical ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from gateway.codes import CANONICAL_BASE
from gateway.identity.matcher import Grade, MatchResult
from gateway.types import JSON

IDENTITY_TASK_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/identity-task"
REVIEW_PROBABLE_MATCH = "review-probable-match"
REVIEW_INPUT_SYSTEM = f"{CANONICAL_BASE}/CodeSystem/identity-review-input"


class LinkAction(StrEnum):
    LINK = "link"
    PROVISIONAL_LINK = "provisional-link"
    NEW_PERSON = "new-person"


@dataclass(frozen=True)
class LinkDecision:
    """The decision; `person_id` is the existing Patient linked to (None for a new person)."""

    action: LinkAction
    person_id: str | None
    match: MatchResult | None
    reason: str
    review_task: JSON | None = None


def decide_link(
    record_ref: str, results: Sequence[MatchResult], *, now: datetime, task_id: str | None = None
) -> LinkDecision:
    """Decide for the record `record_ref` ("Patient/<id>") from its match results (any order)."""
    ordered = sorted(results, key=lambda r: (-r.grade.rank, -r.score, r.record_id))
    best = ordered[0] if ordered else None
    if best is None or best.grade.rank < Grade.PROBABLE.rank:
        return LinkDecision(LinkAction.NEW_PERSON, None, None, "no existing person matches probably or better")
    certain = [r for r in ordered if r.grade is Grade.CERTAIN]
    if len(certain) == 1:
        return LinkDecision(LinkAction.LINK, best.record_id, best, "one certain match")
    reason = (
        f"{len(certain)} existing records match with certainty: they may be duplicates of each other"
        if certain
        else "probable match: linked provisionally until a person confirms"
    )
    competing = certain[1:] if certain else [r for r in ordered[1:] if r.grade is Grade.PROBABLE]
    task = review_task(record_ref, best, competing, reason=reason, now=now, task_id=task_id)
    return LinkDecision(LinkAction.PROVISIONAL_LINK, best.record_id, best, reason, task)


def review_task(
    record_ref: str,
    best: MatchResult,
    others: Sequence[MatchResult],
    *,
    reason: str,
    now: datetime,
    task_id: str | None = None,
) -> JSON:
    """A FHIR Task asking a person to confirm or undo the provisional link, with why it was made."""
    stamp = now.isoformat()
    inputs: list[JSON] = [
        _input("candidate", valueReference={"reference": f"Patient/{best.record_id}"}),
        _input("match-grade", valueCode=best.grade.value),
        _input("match-probability", valueDecimal=round(best.probability, 6)),
        _input("match-weight", valueDecimal=round(best.score, 2)),
    ]
    for comparison in best.explanation:
        inputs.append(_input(f"field:{comparison.field}", valueString=f"{comparison.level} ({comparison.weight:+.1f})"))
    if best.names_swapped:
        inputs.append(_input("names-swapped", valueBoolean=True))
    for why in best.guards:
        inputs.append(_input("guard", valueString=why))
    for other in others:
        inputs.append(_input("other-candidate", valueReference={"reference": f"Patient/{other.record_id}"}))
    task: JSON = {"resourceType": "Task"}
    if task_id:
        task["id"] = task_id
    task.update(
        {
            "status": "requested",
            "intent": "order",
            "priority": "routine",
            "code": {
                "coding": [
                    {
                        "system": IDENTITY_TASK_SYSTEM,
                        "code": REVIEW_PROBABLE_MATCH,
                        "display": "Review a probable patient match",
                    }
                ]
            },
            "description": (
                f"Confirm or undo the provisional link of {record_ref} to Patient/{best.record_id}: {reason}"
            ),
            "focus": {"reference": record_ref},
            "for": {"reference": f"Patient/{best.record_id}"},
            "authoredOn": stamp,
            "lastModified": stamp,
            "input": inputs,
        }
    )
    return task


def _input(code: str, **value: object) -> JSON:
    return {"type": {"coding": [{"system": REVIEW_INPUT_SYSTEM, "code": code}], "text": code}, **value}
