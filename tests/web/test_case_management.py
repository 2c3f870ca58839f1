"""The case-management JSON APIs: case-finding worklist, caseloads, rounds, reviews due, closing an episode.

Data goes in over the FHIR REST API; the answers come from `/api/case-management/…`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from gateway.alerts.registry import EXT_VIRTUAL_WARD
from gateway.codes import EPISODE_TYPE_SYSTEM, VIRTUAL_WARD
from gateway.record.case_finding import LIVES_ALONE, SNOMED
from gateway.record.review import EXT_CARE_PLAN_REVIEW_DATE, EXT_CLOSURE_REASON

V3 = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PRIORITY = "http://terminology.hl7.org/CodeSystem/v3-ActPriority"
CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
API = "/api/case-management"


async def create(api: httpx.AsyncClient, resource: dict[str, Any]) -> str:
    response = await api.post(f"/fhir/{resource['resourceType']}", json=resource)
    assert response.status_code == 201, response.text
    rid: str = response.json()["id"]
    return rid


def recent(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="seconds")


def subject(pid: str) -> dict[str, str]:
    return {"reference": f"Patient/{pid}"}


async def admission(api: httpx.AsyncClient, pid: str, days_ago: int) -> None:
    await create(
        api,
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": V3, "code": "IMP"},
            "priority": {"coding": [{"system": PRIORITY, "code": "EM"}]},
            "subject": subject(pid),
            "period": {"start": recent(days_ago)},
        },
    )


async def attendance(api: httpx.AsyncClient, pid: str, days_ago: int) -> None:
    await create(
        api,
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": V3, "code": "EMER"},
            "subject": subject(pid),
            "period": {"start": recent(days_ago)},
        },
    )


async def condition(api: httpx.AsyncClient, pid: str, code: str) -> None:
    await create(
        api,
        {
            "resourceType": "Condition",
            "clinicalStatus": {"coding": [{"system": CLINICAL, "code": "active"}]},
            "code": {"coding": [{"system": SNOMED, "code": code}]},
            "subject": subject(pid),
        },
    )


async def episode(api: httpx.AsyncClient, pid: str, manager: str, *, ward: str | None = None, team: bool = True) -> str:
    body: dict[str, Any] = {
        "resourceType": "EpisodeOfCare",
        "status": "active",
        "type": [{"coding": [{"system": EPISODE_TYPE_SYSTEM, "code": VIRTUAL_WARD}]}],
        "patient": subject(pid),
        "careManager": {"reference": f"Practitioner/{manager}"},
        "period": {"start": "2025-01-01"},
    }
    if team:
        team_id = await create(api, {"resourceType": "CareTeam", "status": "active", "subject": subject(pid)})
        body["team"] = [{"reference": f"CareTeam/{team_id}"}]
    if ward:
        body["extension"] = [{"url": EXT_VIRTUAL_WARD, "valueReference": {"reference": f"Location/{ward}"}}]
    return await create(api, body)


async def seed_population(api: httpx.AsyncClient) -> dict[str, str]:
    ids: dict[str, str] = {}
    ids["cm"] = await create(api, {"resourceType": "Practitioner"})
    # frail, two emergency admissions, lives alone: 4 + 6 + 2 = 12
    ids["p1"] = await create(api, {"resourceType": "Patient", "birthDate": "1930-01-01"})
    await admission(api, ids["p1"], 20)
    await admission(api, ids["p1"], 90)
    await create(
        api,
        {
            "resourceType": "Observation",
            "status": "final",
            "code": {"coding": [{"system": SNOMED, "code": LIVES_ALONE}]},
            "subject": subject(ids["p1"]),
        },
    )
    # two linked records of one person: aged 80 (+2), three LTCs on the second record (3 + 2), one A&E (+1) = 8
    ids["p2"] = await create(api, {"resourceType": "Patient", "birthDate": "1945-01-01"})
    ids["p2b"] = await create(
        api, {"resourceType": "Patient", "link": [{"other": subject(ids["p2"]), "type": "seealso"}]}
    )
    for code in ("84114007", "13645005", "73211009"):
        await condition(api, ids["p2b"], code)
    await attendance(api, ids["p2"], 10)
    # high scoring but already on a virtual ward: 4 + 6 = 10
    ids["p3"] = await create(api, {"resourceType": "Patient", "birthDate": "1930-01-01"})
    await admission(api, ids["p3"], 5)
    await admission(api, ids["p3"], 40)
    ids["ep3"] = await episode(api, ids["p3"], ids["cm"])
    # young and well: 0
    ids["p4"] = await create(api, {"resourceType": "Patient", "birthDate": "1990-01-01"})
    return ids


async def test_case_finding_worklist_order_and_reasons(api: httpx.AsyncClient) -> None:
    ids = await seed_population(api)
    response = await api.get(f"{API}/case-finding?threshold=5")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scored"] == 4  # four people: the two linked records count once
    worklist = body["worklist"]
    assert [w["points"] for w in worklist] == [12, 8]
    assert worklist[0]["patient"] == f"Patient/{ids['p1']}"
    assert worklist[0]["band"] == "high" and worklist[0]["rank"] == 1
    assert any("emergency admission" in r for r in worklist[0]["reasons"])
    assert set(worklist[1]["linkedRecords"]) == {f"Patient/{ids['p2']}", f"Patient/{ids['p2b']}"}
    assert any("3 long-term condition(s)" in r for r in worklist[1]["reasons"])
    assert f"Patient/{ids['p3']}" not in {w["patient"] for w in worklist}  # already case-managed
    ra = (await api.get(f"/fhir/{worklist[0]['riskAssessment']}")).json()
    assert ra["subject"]["reference"] == f"Patient/{ids['p1']}"
    assert ra["prediction"][0]["qualitativeRisk"]["coding"][0]["code"] == "high"


async def test_case_finding_reruns_do_not_duplicate_risk_assessments(api: httpx.AsyncClient) -> None:
    ids = await seed_population(api)
    first = (await api.get(f"{API}/case-finding")).json()
    assert first["written"] == 4
    assert [w["patient"] for w in first["worklist"]] == [f"Patient/{ids['p1']}"]  # default threshold 10
    again = (await api.get(f"{API}/case-finding")).json()
    assert again["written"] == 0
    assert again["worklist"] == first["worklist"]
    await attendance(api, ids["p4"], 3)
    third = (await api.get(f"{API}/case-finding")).json()
    assert third["written"] == 1  # only the person whose record changed
    search = (await api.get("/fhir/RiskAssessment?_count=0")).json()
    assert search["total"] == 4


async def test_caseload_warnings_at_the_limit(api: httpx.AsyncClient) -> None:
    busy = await create(api, {"resourceType": "Practitioner"})
    calm = await create(api, {"resourceType": "Practitioner"})
    for _ in range(3):
        await episode(api, await create(api, {"resourceType": "Patient"}), busy, team=False)
    frail = await create(api, {"resourceType": "Patient", "birthDate": "1930-01-01"})
    await admission(api, frail, 3)
    await admission(api, frail, 30)
    await episode(api, frail, calm, team=False)
    await episode(api, await create(api, {"resourceType": "Patient"}), calm, team=False)
    await api.get(f"{API}/case-finding")  # scores everyone, so the frail person is known high risk
    response = await api.get(f"{API}/caseloads?limit=2")
    assert response.status_code == 200, response.text
    loads = {c["careManager"]: c for c in response.json()["caseloads"]}
    assert loads[f"Practitioner/{busy}"]["active"] == 3
    assert loads[f"Practitioner/{busy}"]["warnings"] == ["caseload-over-limit"]
    assert loads[f"Practitioner/{calm}"]["active"] == 2  # at the limit is not over it
    assert loads[f"Practitioner/{calm}"]["highRisk"] == 1
    assert loads[f"Practitioner/{calm}"]["warnings"] == ["high-risk-share-over-limit"]
    default = (await api.get(f"{API}/caseloads")).json()
    assert default["policy"]["limit"] == 50
    assert all("caseload-over-limit" not in c["warnings"] for c in default["caseloads"])


async def test_rounds_reviews_and_closing_an_episode(api: httpx.AsyncClient) -> None:
    cm = await create(api, {"resourceType": "Practitioner"})
    ward = await create(api, {"resourceType": "Location", "name": "Virtual ward A"})
    other_ward = await create(api, {"resourceType": "Location", "name": "Virtual ward B"})
    never = await create(api, {"resourceType": "Patient"})
    seen = await create(api, {"resourceType": "Patient"})
    elsewhere = await create(api, {"resourceType": "Patient"})
    ep_never = await episode(api, never, cm, ward=ward)
    ep_seen = await episode(api, seen, cm, ward=ward)
    await episode(api, elsewhere, cm, ward=other_ward)
    await create(
        api,
        {
            "resourceType": "Encounter",
            "status": "finished",
            "class": {"system": V3, "code": "VR"},
            "subject": subject(seen),
            "episodeOfCare": [{"reference": f"EpisodeOfCare/{ep_seen}"}],
            "period": {"start": "2025-06-09T10:00:00Z"},
        },
    )
    response = await api.get(f"{API}/rounds?ward={ward}&date=2025-06-10")
    assert response.status_code == 200, response.text
    rounds = response.json()["round"]
    assert [r["patient"] for r in rounds] == [f"Patient/{never}", f"Patient/{seen}"]  # most overdue first
    assert rounds[0]["overdueDays"] == 160 and rounds[0]["lastRound"] is None
    assert rounds[1]["lastRound"] == "2025-06-09" and rounds[1]["frequency"] == "daily"
    assert (await api.get(f"{API}/rounds")).status_code == 400

    plan = {"resourceType": "CarePlan", "status": "active", "intent": "plan", "subject": subject(never)}
    due = await create(api, {**plan, "extension": [{"url": EXT_CARE_PLAN_REVIEW_DATE, "valueDate": "2025-06-01"}]})
    await create(api, {**plan, "extension": [{"url": EXT_CARE_PLAN_REVIEW_DATE, "valueDate": "2025-07-01"}]})
    reviews = (await api.get(f"{API}/reviews-due?date=2025-06-10")).json()["due"]
    assert reviews == [
        {"carePlan": f"CarePlan/{due}", "patient": f"Patient/{never}", "reviewDate": "2025-06-01", "overdueDays": 9}
    ]

    assert (await api.post(f"{API}/episodes/{ep_never}/close", json={})).status_code == 400
    closed = await api.post(f"{API}/episodes/{ep_never}/close", json={"reason": "goals met"})
    assert closed.status_code == 200, closed.text
    body = closed.json()
    assert body["status"] == "finished" and body["period"]["end"]
    assert {"url": EXT_CLOSURE_REASON, "valueCodeableConcept": {"text": "goals met"}} in body["extension"]
    stored = (await api.get(f"/fhir/EpisodeOfCare/{ep_never}")).json()
    assert stored["meta"]["versionId"] == "2" and stored["statusHistory"][-1]["status"] == "active"
    again = await api.post(f"{API}/episodes/{ep_never}/close", json={"reason": "twice"})
    assert again.status_code == 409
    assert (await api.post(f"{API}/episodes/missing/close", json={"reason": "x"})).status_code == 404
    after = (await api.get(f"{API}/rounds?ward={ward}&date=2025-06-10")).json()["round"]
    assert [r["patient"] for r in after] == [f"Patient/{seen}"]  # closing takes the person off the ward
