"""QuestionnaireResponse against the shared assessment: required, types, options, repeats, enableWhen.

Spec: https://hl7.org/fhir/R4/questionnaireresponse.html#link, https://hl7.org/fhir/R4/questionnaire.html
"""

from __future__ import annotations

from typing import Any

import pytest

from gateway.record.validation import ProfileRegistry, validate_questionnaire_response
from gateway.record.validation import urls as u
from gateway.types import JSON

DEP = u.ASSESSMENT_DEPENDENCY_SYSTEM


def a(**value: Any) -> list[JSON]:
    return [dict(value)]


def q(link: str, *answers: JSON) -> JSON:
    return {"linkId": link, "answer": list(answers)}


def group(link: str, *items: JSON) -> JSON:
    return {"linkId": link, "item": list(items)}


def dep(code: str) -> JSON:
    return {"valueCoding": {"system": DEP, "code": code}}


def completed() -> JSON:
    """A fully answered shared assessment for a person with an unpaid carer and no paid care."""
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": u.SHARED_ASSESSMENT,
        "status": "completed",
        "item": [
            group(
                "clinical",
                q("clinical.conditions", {"valueString": "COPD"}, {"valueString": "Heart failure"}),
                q("clinical.admissions", {"valueInteger": 2}),
                q("clinical.last-admission", {"valueDate": "2024-11-20"}),
                q("clinical.falls", {"valueBoolean": True}),
                q("clinical.falls-count", {"valueInteger": 3}),
            ),
            group(
                "mobility",
                q("mobility.level", dep("needs-some-help")),
                q("mobility.aids", {"valueString": "Walking frame"}, {"valueString": "Wheelchair"}),
            ),
            group(
                "adl",
                q("adl.washing", dep("needs-some-help")),
                q("adl.dressing", dep("needs-prompting")),
                q("adl.eating", dep("independent")),
                q("adl.toileting", dep("independent")),
            ),
            group("cognition", q("cognition.concerns", {"valueBoolean": False})),
            group("formal-care", q("formal-care.receives", {"valueBoolean": False})),
            group(
                "informal-care",
                q("informal-care.has-carer", {"valueBoolean": True}),
                q(
                    "informal-care.relationship",
                    {"valueCoding": {"system": "http://terminology.hl7.org/CodeSystem/v3-RoleCode", "code": "SPS"}},
                ),
            ),
            group(
                "carer",
                q("carer.assessment-offered", {"valueBoolean": True}),
                q("carer.strain", {"valueString": "Some"}),
            ),
            group("home", q("home.lives-alone", {"valueBoolean": False})),
            group(
                "goals",
                q("goals.what-matters", {"valueString": "Staying at home with my wife"}),
                group("goals.goal", q("goals.goal.description", {"valueString": "Walk to the shop"})),
                group("goals.goal", q("goals.goal.description", {"valueString": "Fewer falls"})),
            ),
        ],
    }


@pytest.fixture(scope="module")
def check(registry: ProfileRegistry) -> Any:
    questionnaire = registry.questionnaire(u.SHARED_ASSESSMENT)
    assert questionnaire is not None
    return lambda qr: validate_questionnaire_response(qr, questionnaire, expansion=registry.expansion)


def where(issues: list[JSON]) -> list[tuple[str, str]]:
    return [(i["code"], e) for i in issues for e in i.get("expression", [])]


def _item(qr: JSON, *links: str) -> JSON:
    items = qr["item"]
    found: JSON = {}
    for link in links:
        found = next(i for i in items if i["linkId"] == link)
        items = found.get("item", [])
    return found


def _remove(qr: JSON, *links: str) -> None:
    parent = _item(qr, *links[:-1]) if len(links) > 1 else qr
    parent["item"] = [i for i in parent["item"] if i["linkId"] != links[-1]]


def test_completed_assessment_is_valid(check: Any) -> None:
    assert check(completed()) == []


def test_missing_required_question(check: Any) -> None:
    qr = completed()
    _remove(qr, "adl", "adl.eating")
    assert where(check(qr)) == [
        ("required", "QuestionnaireResponse.item.where(linkId='adl').item.where(linkId='adl.eating')")
    ]


def test_missing_required_group(check: Any) -> None:
    qr = completed()
    _remove(qr, "home")
    assert where(check(qr)) == [("required", "QuestionnaireResponse.item.where(linkId='home')")]


def test_required_question_present_without_an_answer(check: Any) -> None:
    qr = completed()
    _item(qr, "cognition", "cognition.concerns")["answer"] = []
    assert where(check(qr)) == [
        ("required", "QuestionnaireResponse.item.where(linkId='cognition').item.where(linkId='cognition.concerns')")
    ]


def test_required_items_are_not_enforced_while_in_progress(check: Any) -> None:
    qr = completed()
    qr["status"] = "in-progress"
    _remove(qr, "home")
    _remove(qr, "adl", "adl.eating")
    assert check(qr) == []


def test_answer_of_the_wrong_type(check: Any) -> None:
    qr = completed()
    _item(qr, "clinical", "clinical.falls-count")["answer"] = [{"valueString": "three"}]
    issues = check(qr)
    assert where(issues) == [
        (
            "value",
            "QuestionnaireResponse.item.where(linkId='clinical').item.where(linkId='clinical.falls-count').answer[0]",
        )
    ]
    assert "valueInteger" in issues[0]["diagnostics"]


def test_answer_not_among_the_answer_options(check: Any) -> None:
    qr = completed()
    _item(qr, "mobility", "mobility.aids")["answer"][1] = {"valueString": "Skateboard"}
    assert where(check(qr)) == [
        ("value", "QuestionnaireResponse.item.where(linkId='mobility').item.where(linkId='mobility.aids').answer[1]")
    ]


def test_coding_option_matches_on_system_and_code(check: Any) -> None:
    qr = completed()
    rel = _item(qr, "informal-care", "informal-care.relationship")
    rel["answer"] = [{"valueCoding": {"system": "http://example.org/other", "code": "SPS"}}]
    assert [c for c, _ in where(check(qr))] == ["value"]


def test_answer_value_set_membership(check: Any) -> None:
    qr = completed()
    _item(qr, "adl", "adl.dressing")["answer"] = [dep("can-do-it-on-a-good-day")]
    assert where(check(qr)) == [
        ("code-invalid", "QuestionnaireResponse.item.where(linkId='adl').item.where(linkId='adl.dressing').answer[0]")
    ]


def test_several_answers_to_a_non_repeating_question(check: Any) -> None:
    qr = completed()
    _item(qr, "home", "home.lives-alone")["answer"].append({"valueBoolean": True})
    assert where(check(qr)) == [
        ("structure", "QuestionnaireResponse.item.where(linkId='home').item.where(linkId='home.lives-alone').answer[1]")
    ]


def test_non_repeating_group_given_twice(check: Any) -> None:
    qr = completed()
    qr["item"].append(group("home", q("home.lives-alone", {"valueBoolean": True})))
    assert where(check(qr)) == [("structure", "QuestionnaireResponse.item.where(linkId='home')[1]")]


def test_repeating_group_items_are_indexed(check: Any) -> None:
    qr = completed()
    _item(qr, "goals")["item"][2]["item"] = []
    assert where(check(qr)) == [
        (
            "required",
            "QuestionnaireResponse.item.where(linkId='goals').item.where(linkId='goals.goal')[1]"
            ".item.where(linkId='goals.goal.description')",
        )
    ]


def test_unknown_link_id(check: Any) -> None:
    qr = completed()
    _item(qr, "home")["item"].append(q("home.pets", {"valueBoolean": True}))
    assert where(check(qr)) == [
        ("structure", "QuestionnaireResponse.item.where(linkId='home').item.where(linkId='home.pets')")
    ]


def test_group_with_an_answer(check: Any) -> None:
    qr = completed()
    _item(qr, "home")["answer"] = [{"valueBoolean": True}]
    assert where(check(qr)) == [("structure", "QuestionnaireResponse.item.where(linkId='home').answer[0]")]


# --- enableWhen --------------------------------------------------------------------------------


def test_disabled_question_must_not_be_answered(check: Any) -> None:
    qr = completed()
    _item(qr, "cognition")["item"].append(q("cognition.capacity-assessed", {"valueBoolean": True}))
    issues = check(qr)
    assert where(issues) == [
        (
            "business-rule",
            "QuestionnaireResponse.item.where(linkId='cognition').item.where(linkId='cognition.capacity-assessed')",
        )
    ]


def test_disabled_group_must_not_be_answered(check: Any) -> None:
    qr = completed()
    _item(qr, "informal-care", "informal-care.has-carer")["answer"] = [{"valueBoolean": False}]
    _remove(qr, "informal-care", "informal-care.relationship")
    assert where(check(qr)) == [("business-rule", "QuestionnaireResponse.item.where(linkId='carer')")]


def test_required_only_when_enabled(check: Any) -> None:
    qr = completed()
    _item(qr, "clinical", "clinical.falls")["answer"] = [{"valueBoolean": False}]
    _remove(qr, "clinical", "clinical.falls-count")
    assert check(qr) == []
    _item(qr, "clinical", "clinical.falls")["answer"] = [{"valueBoolean": True}]
    assert where(check(qr)) == [
        ("required", "QuestionnaireResponse.item.where(linkId='clinical').item.where(linkId='clinical.falls-count')")
    ]


def test_greater_than_operator(check: Any) -> None:
    qr = completed()
    _item(qr, "clinical", "clinical.admissions")["answer"] = [{"valueInteger": 0}]
    assert [c for c, _ in where(check(qr))] == ["business-rule"]  # last-admission now disabled


def test_enable_behavior_any_with_exists(check: Any) -> None:
    qr = completed()
    qr["item"].append(group("finances", q("finances.referral-date", {"valueDate": "2025-01-10"})))
    assert [c for c, _ in where(check(qr))] == ["business-rule"]
    _item(qr, "finances")["item"].insert(0, q("finances.housing-concerns", {"valueString": "Damp bedroom"}))
    assert check(qr) == []
    _item(qr, "finances")["item"][0] = q("finances.benefits-review", {"valueBoolean": True})
    assert check(qr) == []


def test_not_equals_operator_is_true_without_an_answer() -> None:
    questionnaire = {
        "resourceType": "Questionnaire",
        "item": [
            {"linkId": "a", "type": "string"},
            {
                "linkId": "b",
                "type": "string",
                "required": True,
                "enableWhen": [{"question": "a", "operator": "!=", "answerString": "skip"}],
            },
        ],
    }
    qr: JSON = {"resourceType": "QuestionnaireResponse", "status": "completed", "item": []}
    assert [i["code"] for i in validate_questionnaire_response(qr, questionnaire)] == ["required"]
    qr["item"] = [q("a", {"valueString": "skip"})]
    assert validate_questionnaire_response(qr, questionnaire) == []


def test_nested_items_under_an_answer() -> None:
    questionnaire = {
        "resourceType": "Questionnaire",
        "item": [
            {
                "linkId": "smoker",
                "type": "boolean",
                "item": [{"linkId": "per-day", "type": "integer", "required": True}],
            }
        ],
    }
    qr = {
        "resourceType": "QuestionnaireResponse",
        "status": "completed",
        "item": [
            {"linkId": "smoker", "answer": [{"valueBoolean": True, "item": [q("per-day", {"valueString": "x"})]}]}
        ],
    }
    assert where(validate_questionnaire_response(qr, questionnaire)) == [
        ("value", "QuestionnaireResponse.item.where(linkId='smoker').answer[0].item.where(linkId='per-day').answer[0]")
    ]
