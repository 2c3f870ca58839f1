"""JSON APIs for case-management apps and the ward board, under `/api/case-management/`.

- `GET|POST /case-finding?threshold=N`  score everyone, write RiskAssessments, return the worklist
- `GET /caseloads?limit=&high_risk_share=` per case manager, with warnings
- `GET /rounds?ward=W&date=YYYY-MM-DD`  the day's round list for one ward
- `GET /reviews-due?date=YYYY-MM-DD`    CarePlans due for review
- `POST /episodes/{id}/close`           body `{"reason": "text" | CodeableConcept}`; returns the EpisodeOfCare

Every call authenticates like the FHIR API and passes the same consent filter, so a worklist
names only people the caller may see. Errors are OperationOutcomes (the app's FhirError handler).
Case-finding answers GET too (the worklist is a read for the apps that show it); its writes are
idempotent, so repeating it changes nothing unless the record did.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.fhir.body import parse_json, read_body
from gateway.fhir.errors import invalid
from gateway.fhir.interactions.common import in_thread, repository
from gateway.fhir.operations.patient_everything import consent_filter
from gateway.fhir.responses import json_response
from gateway.fhir.services import Services, services_of
from gateway.record.case_finding import DEFAULT_WEIGHTS
from gateway.record.caseload import CaseloadPolicy
from gateway.record.rounds import RoundPolicy
from gateway.record.worklists import (
    close_episode_by_id,
    load_caseloads,
    load_reviews_due,
    load_round_list,
    run_case_finding,
)

PREFIX = "/api/case-management"
EXTRA_KEY = "case_management"


@dataclass(frozen=True)
class CaseManagementConfig:
    """Policies the APIs use unless a request overrides them (set at wiring time)."""

    caseload: CaseloadPolicy = field(default_factory=CaseloadPolicy)
    rounds: RoundPolicy = field(default_factory=RoundPolicy)
    threshold: int = DEFAULT_WEIGHTS.high_from


def _config(services: Services) -> CaseManagementConfig:
    config = services.extras.get(EXTRA_KEY)
    return config if isinstance(config, CaseManagementConfig) else CaseManagementConfig()


def _int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise invalid(f"{name} must be an integer, not {raw!r}") from exc


def _day(request: Request) -> date:
    raw = request.query_params.get("date")
    if not raw:
        return datetime.now(UTC).date()
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise invalid(f"date must be YYYY-MM-DD, not {raw!r}") from exc


async def case_finding(request: Request) -> Response:
    services = services_of(request)
    repo = repository(request)
    repo.allow("search", "Patient")
    repo.allow("update", "RiskAssessment")
    threshold = _int(request, "threshold", _config(services).threshold)
    now = datetime.now(UTC)

    def work() -> dict[str, Any]:
        with repo.writer() as uow:
            result = run_case_finding(uow, now=now, threshold=threshold, visible=consent_filter(repo, "case-finding"))
        return {
            "threshold": threshold,
            "scored": len(result.scores),
            "written": result.written,
            "worklist": [
                {
                    "rank": item.rank,
                    "patient": f"Patient/{item.patient_id}",
                    "linkedRecords": [f"Patient/{p}" for p in result.people[item.patient_id].patient_ids],
                    "points": item.points,
                    "band": item.band,
                    "reasons": list(item.reasons),
                    "riskAssessment": f"RiskAssessment/{result.assessments[item.patient_id]}",
                }
                for item in result.worklist
            ],
        }

    return JSONResponse(await in_thread(work))


async def caseloads(request: Request) -> Response:
    services = services_of(request)
    repo = repository(request)
    repo.allow("search", "EpisodeOfCare")
    default = _config(services).caseload
    share = request.query_params.get("high_risk_share")
    try:
        policy = CaseloadPolicy(
            limit=_int(request, "limit", default.limit),
            high_risk_share=float(share) if share else default.high_risk_share,
        )
    except ValueError as exc:
        raise invalid(f"high_risk_share must be a number, not {share!r}") from exc

    def work() -> dict[str, Any]:
        with repo.reader() as uow:
            loads = load_caseloads(uow, policy, consent_filter(repo, "caseloads"))
        return {
            "policy": {"limit": policy.limit, "highRiskShare": policy.high_risk_share},
            "caseloads": [
                {
                    "careManager": c.care_manager,
                    "display": c.care_manager_display,
                    "active": c.active,
                    "highRisk": c.high_risk,
                    "highRiskShare": round(c.high_risk_share, 4),
                    "warnings": list(c.warnings),
                }
                for c in loads
            ],
        }

    return JSONResponse(await in_thread(work))


async def rounds(request: Request) -> Response:
    services = services_of(request)
    repo = repository(request)
    repo.allow("search", "EpisodeOfCare")
    ward = request.query_params.get("ward")
    if not ward:
        raise invalid("rounds needs a ward (?ward=<Location id or programme ward id>)")
    today = _day(request)
    policy = _config(services).rounds

    def work() -> dict[str, Any]:
        with repo.reader() as uow:
            items = load_round_list(
                uow, ward_id=ward, today=today, policy=policy, visible=consent_filter(repo, "rounds")
            )
        return {
            "ward": ward,
            "date": today.isoformat(),
            "round": [
                {
                    "patient": f"Patient/{i.patient_id}",
                    "episode": f"EpisodeOfCare/{i.episode_id}",
                    "frequency": i.frequency,
                    "lastRound": i.last_round.isoformat() if i.last_round else None,
                    "due": i.due.isoformat(),
                    "overdueDays": i.overdue_days,
                }
                for i in items
            ],
        }

    return JSONResponse(await in_thread(work))


async def reviews_due(request: Request) -> Response:
    repo = repository(request)
    repo.allow("search", "CarePlan")
    today = _day(request)

    def work() -> dict[str, Any]:
        with repo.reader() as uow:
            items = load_reviews_due(uow, today=today, visible=consent_filter(repo, "reviews-due"))
        return {
            "date": today.isoformat(),
            "due": [
                {
                    "carePlan": f"CarePlan/{i.care_plan_id}",
                    "patient": i.patient_ref,
                    "reviewDate": i.review_date.isoformat(),
                    "overdueDays": i.overdue_days,
                }
                for i in items
            ],
        }

    return JSONResponse(await in_thread(work))


async def close_episode(request: Request) -> Response:
    services = services_of(request)
    repo = repository(request)
    repo.allow("update", "EpisodeOfCare")
    body = parse_json(await read_body(request, services.settings.max_body_bytes))
    reason = body.get("reason")
    if not (isinstance(reason, str) and reason.strip()) and not isinstance(reason, dict):
        raise invalid("closing an episode needs a reason (text or a CodeableConcept)", ["reason"])
    episode_id: str = request.path_params["episode_id"]
    now = datetime.now(UTC)

    def work() -> bytes:
        with repo.writer() as uow:
            stored = close_episode_by_id(
                uow, episode_id, reason, now=now, visible=consent_filter(repo, "close-episode")
            )
        return stored.content or b"{}"

    return json_response(await in_thread(work))


def routes() -> list[Route]:
    return [
        Route(f"{PREFIX}/case-finding", case_finding, methods=["GET", "POST"]),
        Route(f"{PREFIX}/caseloads", caseloads, methods=["GET"]),
        Route(f"{PREFIX}/rounds", rounds, methods=["GET"]),
        Route(f"{PREFIX}/reviews-due", reviews_due, methods=["GET"]),
        Route(f"{PREFIX}/episodes/{{episode_id}}/close", close_episode, methods=["POST"]),
    ]


def install(app: Starlette, services: Services, config: CaseManagementConfig | None = None) -> None:
    """Mount the case-management APIs on the app (before the FHIR catch-all routes are fine too)."""
    if config is not None or EXTRA_KEY not in services.extras:
        services.extras[EXTRA_KEY] = config or CaseManagementConfig()
    app.router.routes.extend(routes())
