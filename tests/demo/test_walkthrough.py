"""`care-gateway demo` end to end, and `make run`'s demo load on a fresh database."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from gateway.app import build_services
from gateway.demo.cli import register
from gateway.demo.load import DEMO_DIR, ensure_demo_loaded
from gateway.demo.walkthrough import DemoFacts, run_demo
from gateway.identity.nhs_number import NHS_NUMBER_SYSTEM, is_valid
from gateway.record.validation.validator import shared_validator
from gateway.settings import Settings
from gateway.store.schema import resource


@pytest.fixture(scope="module")
def facts(tmp_path_factory: pytest.TempPathFactory) -> DemoFacts:
    return run_demo(tmp_path_factory.mktemp("demo"), quiet=True)


def test_the_presentation_alerts_the_case_manager_once(facts: DemoFacts) -> None:
    assert facts.ack_codes == ["CA", "CA"]  # the A&E registration and the admission
    assert facts.case_manager_events == [1]  # the resent A04 alerted nobody again
    assert facts.hospital_notifications == 1
    assert facts.hospital_flags == 1
    assert facts.discharge_tasks == 1
    assert facts.alerts_total == 2  # the two live messages; the loaded history alerted nobody


def test_the_objection_hides_albert_from_the_council_only(facts: DemoFacts) -> None:
    assert facts.sees_objector["demo-council"] is False
    assert facts.sees_objector["demo-case-management"] is True
    assert facts.sees_objector["demo-hospital"] is True
    assert facts.patients_seen["demo-council"] < facts.patients_seen["demo-case-management"]


def test_the_council_sees_no_hospital_encounters(facts: DemoFacts) -> None:
    assert facts.encounters_seen["demo-council"] == 0
    assert facts.encounters_seen["demo-hospital"] > 0
    assert facts.encounters_seen["demo-case-management"] == facts.encounters_seen["demo-hospital"]


def test_mental_health_data_reaches_the_case_team_and_its_author_only(facts: DemoFacts) -> None:
    assert {c for c, seen in facts.sees_mental_health.items() if seen} == {"demo-case-management", "demo-community"}


def test_council_extract_worklist_caseloads_and_audit(facts: DemoFacts) -> None:
    assert facts.council_report["rows"] == 8 and facts.council_report["rejected"] == 1
    assert "Patient/p-dev" in facts.worklist  # not case-managed, several long-term conditions
    assert not {"Patient/p-ada", "Patient/p-bert", "Patient/p-cerys"} & set(facts.worklist)
    assert facts.caseloads == {"Practitioner/cm-okafor": 2, "Practitioner/cm-patel": 1}
    assert facts.audit_events > 0
    assert facts.seconds < 60


def test_ensure_demo_loaded_is_idempotent(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, log_level="WARNING", ward_list_push_enabled=False)
    services = build_services(settings)
    try:
        messages: list[str] = []
        assert ensure_demo_loaded(services, announce=messages.append) > 0
        assert "rejected 1" in messages[0]
        with services.store.reader() as uow:
            count = select(func.count()).select_from(resource).where(resource.c.res_type == "Provenance")
            before = uow.conn.execute(count).scalar()
        assert before and before > 10  # every source file's facts carry Provenance
        assert ensure_demo_loaded(services, announce=messages.append) == 0
        assert messages[-1] == "demo data already loaded"
    finally:
        services.store.engine.dispose()


def test_demo_fixtures_hold_test_range_nhs_numbers_and_valid_profiles() -> None:
    validator = shared_validator()
    for path in sorted(DEMO_DIR.glob("*.json")):
        for entry in json.loads(path.read_text(encoding="utf-8"))["entry"]:
            resource = entry["resource"]
            for ident in resource.get("identifier") or []:
                if isinstance(ident, dict) and ident.get("system") == NHS_NUMBER_SYSTEM:
                    assert ident["value"].startswith("999") and is_valid(ident["value"])
            if resource["resourceType"] in ("CareTeam", "CarePlan", "EpisodeOfCare", "QuestionnaireResponse"):
                assert validator.validate(resource) == [], resource["id"]


def test_the_shared_assessment_is_checked_against_the_questionnaire() -> None:
    bundle = json.loads((DEMO_DIR / "04-virtual-ward.json").read_text(encoding="utf-8"))
    response = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "QuestionnaireResponse")
    response["item"] = [i for i in response["item"] if i["linkId"] != "adl"]  # a required domain left out
    assert shared_validator().validate(response)


def test_the_demo_command_parses() -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["demo", "--quiet", "--data-dir", "somewhere"])
    assert args.quiet and args.data_dir == Path("somewhere") and callable(args.func)
