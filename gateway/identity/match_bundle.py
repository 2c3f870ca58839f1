"""`Patient/$match` (R4): read the input Parameters, and build the searchset Bundle of graded matches.

https://hl7.org/fhir/R4/patient-operation-match.html. Inputs: `resource` (a Patient, required),
`onlyCertainMatches` (boolean) and `count` (positive integer). Each entry carries
`search.mode = "match"`, `search.score` (the match probability, 0..1) and the `match-grade`
extension. With `onlyCertainMatches`, only a single certain match is returned; when several are
certain none is, as the specification asks, and an OperationOutcome entry says why.
Pure: the caller supplies the index, the matcher and how to fetch each Patient's JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.codes import MATCH_GRADE_EXT
from gateway.fhir.errors import FhirError, invalid
from gateway.identity.blocking import CandidateIndex
from gateway.identity.matcher import Grade, Matcher, MatchResult
from gateway.identity.person import PersonRecord
from gateway.types import JSON

MATCH_GRADE_EXTENSION = MATCH_GRADE_EXT
DEFAULT_COUNT = 10
MAX_COUNT = 100
_KNOWN = ("resource", "onlyCertainMatches", "count")


@dataclass(frozen=True)
class MatchRequest:
    """The parsed `$match` input."""

    resource: JSON
    only_certain_matches: bool = False
    count: int | None = None


def parse_match_parameters(parameters: Any) -> MatchRequest:
    """Read a `$match` Parameters resource; raises `FhirError` (400 invalid) naming the bad parameter."""
    if not isinstance(parameters, dict) or parameters.get("resourceType") != "Parameters":
        raise invalid("$match expects a Parameters resource")
    seen: dict[str, JSON] = {}
    for i, param in enumerate(parameters.get("parameter") or []):
        name = param.get("name") if isinstance(param, dict) else None
        where = [f"Parameters.parameter[{i}]"]
        if name not in _KNOWN:
            raise invalid(f"unknown $match parameter {name!r}; expected one of {', '.join(_KNOWN)}", where)
        if name in seen:
            raise invalid(f"$match parameter {name!r} given more than once", where)
        seen[str(name)] = param
    if "resource" not in seen:
        raise FhirError("required", "$match needs a 'resource' parameter holding a Patient", status=400)
    resource = seen["resource"].get("resource")
    if not isinstance(resource, dict) or resource.get("resourceType") != "Patient":
        raise invalid("$match 'resource' must be a Patient", ["Parameters.parameter.resource"])
    only_certain = False
    if "onlyCertainMatches" in seen:
        value = seen["onlyCertainMatches"].get("valueBoolean")
        if not isinstance(value, bool):
            raise invalid("$match 'onlyCertainMatches' must be a valueBoolean", ["Parameters.parameter.value"])
        only_certain = value
    count: int | None = None
    if "count" in seen:
        param = seen["count"]
        value = param.get("valueInteger", param.get("valuePositiveInt"))
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise invalid("$match 'count' must be a positive integer", ["Parameters.parameter.value"])
        count = value
    return MatchRequest(resource=resource, only_certain_matches=only_certain, count=count)


def select_results(
    results: Sequence[MatchResult], *, only_certain_matches: bool, count: int | None
) -> tuple[list[MatchResult], str | None]:
    """The results to return (best first) and, when some were held back on purpose, why."""
    ordered = sorted(results, key=lambda r: (-r.grade.rank, -r.score, r.record_id))
    if only_certain_matches:
        certain = [r for r in ordered if r.grade is Grade.CERTAIN]
        if len(certain) > 1:
            return [], f"{len(certain)} records match with certainty; none returned with onlyCertainMatches"
        return certain, None
    limit = min(count or DEFAULT_COUNT, MAX_COUNT)
    return ordered[:limit], None


def build_match_bundle(
    results: Sequence[MatchResult],
    *,
    resource_for: Callable[[str], JSON],
    only_certain_matches: bool = False,
    count: int | None = None,
    base_url: str = "",
) -> JSON:
    """The searchset Bundle; `resource_for(record_id)` gives each matched Patient's JSON."""
    chosen, held_back = select_results(results, only_certain_matches=only_certain_matches, count=count)
    entries: list[JSON] = []
    for result in chosen:
        resource = resource_for(result.record_id)
        entry: JSON = {}
        if base_url:
            entry["fullUrl"] = f"{base_url.rstrip('/')}/Patient/{resource.get('id', result.record_id)}"
        entry["resource"] = resource
        entry["search"] = {
            "extension": [{"url": MATCH_GRADE_EXTENSION, "valueCode": result.grade.value}],
            "mode": "match",
            "score": round(result.probability, 6),
        }
        entries.append(entry)
    if held_back:
        entries.append(
            {
                "resource": {
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "information", "code": "multiple-matches", "diagnostics": held_back}],
                },
                "search": {"mode": "outcome"},
            }
        )
    bundle: JSON = {"resourceType": "Bundle", "type": "searchset", "total": len(chosen)}
    if entries:
        bundle["entry"] = entries
    return bundle


def run_match(
    parameters: Any,
    *,
    index: CandidateIndex,
    matcher: Matcher,
    resource_for: Callable[[str], JSON],
    base_url: str = "",
) -> JSON:
    """The whole operation: Parameters in, searchset Bundle out. Raises `FhirError` on bad input."""
    request = parse_match_parameters(parameters)
    query = PersonRecord.from_patient(request.resource)
    limit = None if request.only_certain_matches else min(request.count or DEFAULT_COUNT, MAX_COUNT)
    results = matcher.match(query, index, limit=limit)
    return build_match_bundle(
        results,
        resource_for=resource_for,
        only_certain_matches=request.only_certain_matches,
        count=request.count,
        base_url=base_url,
    )
