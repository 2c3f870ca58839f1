"""What mapping one CLD row gives the intake: accepted with its resources, or rejected with reasons.

The intake turns each result into one line of the per-row report (`report_entry`) and counts
them (`totals`); the CLI prints, the API returns and the report download carries the same lines.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from gateway.mappings.social_care.record import Reason
from gateway.types import JSON


@dataclass(frozen=True)
class Accepted:
    """Resources to write by conditional update: each resource's first identifier is its key."""

    row_number: int
    resources: tuple[JSON, ...]
    event_key: str
    warnings: tuple[str, ...] = field(default=())
    status: Literal["accepted"] = "accepted"

    @property
    def resource_types(self) -> tuple[str, ...]:
        return tuple(r["resourceType"] for r in self.resources)


@dataclass(frozen=True)
class Rejected:
    row_number: int
    reasons: tuple[Reason, ...]
    status: Literal["rejected"] = "rejected"


RowResult = Accepted | Rejected


def report_entry(result: RowResult) -> JSON:
    """One report line: row, status, reasons, event key, resource types written (no personal data)."""
    if isinstance(result, Accepted):
        return {
            "row": result.row_number,
            "status": result.status,
            "reasons": [],
            "warnings": list(result.warnings),
            "event_key": result.event_key,
            "resource_types": list(result.resource_types),
        }
    return {
        "row": result.row_number,
        "status": result.status,
        "reasons": [str(r) for r in result.reasons],
        "warnings": [],
        "event_key": None,
        "resource_types": [],
    }


def totals(results: Iterable[RowResult]) -> dict[str, int]:
    counts = {"rows": 0, "accepted": 0, "rejected": 0, "resources": 0}
    for r in results:
        counts["rows"] += 1
        counts[r.status] += 1
        if isinstance(r, Accepted):
            counts["resources"] += len(r.resources)
    return counts
