"""Fellegi–Sunter comparison levels, weights, grades and guards (gateway/identity/matcher.py)."""

from __future__ import annotations

import math
from typing import Any

import pytest

from gateway.identity.blocking import InMemoryCandidateIndex
from gateway.identity.matcher import (
    Grade,
    Matcher,
    MatchModel,
    Thresholds,
    compare_birth_date,
    compare_family,
    compare_given,
    compare_nhs_number,
    compare_postcode,
    compare_sex,
    default_model,
)
from gateway.identity.nhs_number import with_check_digit
from gateway.identity.person import PersonRecord

NHS_A = with_check_digit("999000123") or ""
NHS_B = with_check_digit("999000124") or ""


def rec(**changes: Any) -> PersonRecord:
    fields: dict[str, Any] = {
        "given": ["Margaret", "Ann"],
        "family": "Hartley",
        "birth_date": "1948-05-17",
        "sex": "female",
        "postcodes": ["LS6 2QT"],
    }
    fields.update(changes)
    return PersonRecord.from_demographics(**fields)


BASE = rec()


@pytest.mark.parametrize(
    ("other", "level"),
    [
        (rec(family="HARTLEY"), "exact"),
        (rec(family="Hartly"), "close"),
        (rec(family="Hartley-Wood"), "part"),
        (rec(family="Hartley Wood"), "part"),
        (rec(family="Hardy"), "similar"),
        (rec(family="Okafor"), "disagree"),
        (rec(family=""), "missing"),
    ],
)
def test_family_levels(other: PersonRecord, level: str) -> None:
    assert compare_family(BASE, other) == level


def test_family_written_with_and_without_a_space_is_exact() -> None:
    assert compare_family(rec(family="Smith Jones"), rec(family="SmithJones")) == "exact"


@pytest.mark.parametrize(
    ("other", "level"),
    [
        (rec(given=["margaret"]), "exact"),
        (rec(given=["Peggy"]), "nickname"),
        (rec(given=["Margeret"]), "close"),
        (rec(given=["Ann"]), "middle"),
        (rec(given=["M"]), "initial"),
        (rec(given=["Marjorie"]), "similar"),
        (rec(given=["Susan"]), "disagree"),
        (rec(given=[]), "missing"),
    ],
)
def test_given_levels(other: PersonRecord, level: str) -> None:
    assert compare_given(BASE, other) == level


def test_one_edit_in_a_short_forename_is_close() -> None:
    assert compare_given(rec(given=["Max"]), rec(given=["Jax"])) == "close"
    assert compare_given(rec(given=["Mia"]), rec(given=["Mai"])) == "close"


@pytest.mark.parametrize(
    ("other", "level"),
    [
        (rec(birth_date="1948-05-17"), "exact"),
        (rec(birth_date="1948-05-18"), "one_digit"),
        (rec(birth_date="1958-05-17"), "one_digit"),
        (rec(birth_date="1948-11-30"), "year_only"),
        (rec(birth_date="1948-05"), "year_month"),
        (rec(birth_date="1938-05"), "one_digit"),
        (rec(birth_date="1948"), "year_only"),
        (rec(birth_date="1971-02-03"), "disagree"),
        (rec(birth_date=None), "missing"),
    ],
)
def test_birth_date_levels(other: PersonRecord, level: str) -> None:
    assert compare_birth_date(BASE, other) == level


def test_day_and_month_transposed() -> None:
    assert compare_birth_date(rec(birth_date="1948-05-07"), rec(birth_date="1948-07-05")) == "transposed"


@pytest.mark.parametrize(
    ("other", "level"),
    [
        (rec(postcodes=["ls62qt"]), "exact"),
        (rec(postcodes=["LS6 2XX"]), "sector"),
        (rec(postcodes=["LS6 4AB"]), "district"),
        (rec(postcodes=["BD1 1AA"]), "disagree"),
        (rec(postcodes=["BD1 1AA", "LS6 2QT"]), "exact"),  # an old address still agrees
        (rec(postcodes=[]), "missing"),
    ],
)
def test_postcode_levels(other: PersonRecord, level: str) -> None:
    assert compare_postcode(BASE, other) == level


def test_sex_and_nhs_levels() -> None:
    assert compare_sex(BASE, rec(sex="F")) == "agree"
    assert compare_sex(BASE, rec(sex="male")) == "disagree"
    assert compare_sex(BASE, rec(sex="unknown")) == "missing"
    assert compare_nhs_number(rec(nhs_number=NHS_A), rec(nhs_number=NHS_A)) == "agree"
    assert compare_nhs_number(rec(nhs_number=NHS_A), rec(nhs_number=NHS_B)) == "disagree"
    assert compare_nhs_number(rec(nhs_number=NHS_A), BASE) == "missing"


def test_weights_are_log2_of_m_over_u_and_every_level_has_a_reason() -> None:
    import json

    from gateway.identity.matcher import WEIGHTS_FILE

    data = json.loads(WEIGHTS_FILE.read_text(encoding="utf-8"))
    model = default_model()
    for name, spec in data["fields"].items():
        for level, p in spec["levels"].items():
            assert p["why"]
            assert 0 < p["m"] <= 1 and 0 < p["u"] <= 1
            assert model.weight(name, level) == pytest.approx(math.log2(p["m"] / p["u"]))
    assert model.weight("postcode", "missing") == 0.0


def test_identical_records_are_certain_with_high_probability() -> None:
    result = Matcher().compare(BASE, rec())
    assert result.grade is Grade.CERTAIN
    assert result.probability > 0.999
    assert result.score == pytest.approx(sum(c.weight for c in result.explanation))
    assert {c.field for c in result.explanation} == {
        "nhs_number",
        "family",
        "given",
        "birth_date",
        "sex",
        "postcode",
    }


def test_duplicate_without_nhs_number_nickname_and_moved_is_certain() -> None:
    other = rec(given=["Peggy"], postcodes=["BD5 7AA"])
    assert Matcher().compare(BASE, other).grade is Grade.CERTAIN


def test_duplicate_with_three_differences_is_probable() -> None:
    other = rec(given=["Peggy"], family="Hartly", postcodes=["BD5 7AA"])  # nickname, typo, moved
    assert Matcher().compare(BASE, other).grade is Grade.PROBABLE


def test_swapped_names_are_recognised_at_a_small_cost() -> None:
    swapped = rec(given=["Hartley"], family="Margaret")
    result = Matcher().compare(BASE, swapped)
    assert result.names_swapped
    assert result.grade is Grade.CERTAIN
    straight = Matcher().compare(BASE, rec())
    assert result.score < straight.score


def test_one_crossed_name_alone_is_not_a_swap() -> None:
    # Esme Brown against "Brown Archie": sharing one name across fields is not a swap.
    result = Matcher().compare(rec(given=["Esme"], family="Brown"), rec(given=["Brown"], family="Archie"))
    assert not result.names_swapped


def test_twins_are_not_linked() -> None:
    twin = rec(given=["Susan"])  # same surname, birth date, postcode and sex
    result = Matcher().compare(BASE, twin)
    assert result.score > Matcher().thresholds.certain  # the naive sum would link them
    assert result.grade is Grade.POSSIBLE
    assert result.guards


def test_opposite_sex_twins_with_similar_names_are_not_linked() -> None:
    a = rec(given=["Daniel"], sex="male")
    b = rec(given=["Danielle"], sex="female")
    assert Matcher().compare(a, b).grade is Grade.POSSIBLE


def test_namesake_father_and_son_are_not_linked() -> None:
    father = rec(given=["George"], sex="male", birth_date="1941-02-03")
    son = rec(given=["George"], sex="male", birth_date="1969-10-22")
    assert Matcher().compare(father, son).grade is Grade.POSSIBLE


def test_nhs_number_agreement_is_decisive() -> None:
    a = rec(nhs_number=NHS_A)
    b = rec(nhs_number=NHS_A, given=["Ann"], family="Hartley", postcodes=[], birth_date="1948-05-18")
    assert Matcher().compare(a, b).grade is Grade.CERTAIN
    # Even where the demographic guards would hold it back (a different first name).
    c = rec(nhs_number=NHS_A, given=["Susan"])
    assert Matcher().compare(a, c).grade is Grade.CERTAIN


def test_nhs_number_agreement_with_nothing_else_goes_to_review() -> None:
    a = rec(nhs_number=NHS_A)
    b = rec(nhs_number=NHS_A, given=["Kwame"], family="Mensah", birth_date="2001-09-30", sex="male")
    assert Matcher().compare(a, b).grade is Grade.PROBABLE


def test_different_valid_nhs_numbers_block_a_link() -> None:
    result = Matcher().compare(rec(nhs_number=NHS_A), rec(nhs_number=NHS_B))
    assert result.grade is Grade.POSSIBLE


def test_placeholder_nhs_number_is_ignored() -> None:
    a = rec(nhs_number="9999999999", given=["Kwame"], family="Mensah", birth_date="2001-09-30")
    b = rec(nhs_number="9999999999")
    assert a.nhs_number is None and b.nhs_number is None
    result = Matcher().compare(a, b)
    assert result.explanation[0].level == "missing"
    assert result.grade is Grade.POSSIBLE or result.grade is Grade.CERTAINLY_NOT


def test_grade_thresholds_are_configurable() -> None:
    other = rec(given=["Peggy"], family="Hartly", postcodes=["BD5 7AA"], sex=None)
    score = Matcher().compare(BASE, other).score
    strict = Matcher(thresholds=Thresholds(certain=score + 1, probable=score, possible=score - 10))
    assert strict.compare(BASE, other).grade is Grade.PROBABLE
    lax = Matcher(thresholds=Thresholds(certain=score - 1, probable=score - 2, possible=score - 3))
    assert lax.compare(BASE, other).grade is Grade.CERTAIN
    assert Thresholds(30, 20, 10).grade(9.99) is Grade.CERTAINLY_NOT
    assert Thresholds(30, 20, 10).grade(10) is Grade.POSSIBLE


def test_probability_follows_the_score_and_the_prior() -> None:
    model = default_model()
    assert model.probability(-model.prior_log2_odds) == pytest.approx(0.5)
    assert model.probability(-5000) == 0.0
    assert 0 < model.probability(0) < model.probability(20) < 1


def test_model_can_be_loaded_from_other_data() -> None:
    import json

    from gateway.identity.matcher import WEIGHTS_FILE

    data = json.loads(WEIGHTS_FILE.read_text(encoding="utf-8"))
    data["guards"] = []
    model = MatchModel.from_json(data)
    twin = rec(given=["Susan"])
    assert Matcher(model).compare(BASE, twin).grade is Grade.CERTAIN  # without guards, twins link


def test_explanation_is_json_for_the_review_list() -> None:
    explained = Matcher().compare(BASE, rec(given=["Susan"])).explain()
    assert explained["grade"] == "possible"
    fields = {f["field"]: f for f in explained["fields"]}
    assert fields["given"]["level"] == "disagree" and fields["given"]["weight"] < 0
    assert explained["guards"]


def test_match_ranks_candidates_from_the_index() -> None:
    index = InMemoryCandidateIndex()
    index.add("same", rec(given=["Peggy"]))
    index.add("twin", rec(given=["Susan"]))
    index.add("stranger", rec(given=["Kwame"], family="Mensah", birth_date="2001-09-30", postcodes=["BD1 1AA"]))
    results = Matcher().match(BASE, index)
    assert [r.record_id for r in results] == ["same", "twin"]
    assert [r.grade for r in results] == [Grade.CERTAIN, Grade.POSSIBLE]
    assert Matcher().match(BASE, index, limit=1, exclude={"same"})[0].record_id == "twin"
    assert Matcher().match(BASE, index, min_grade=Grade.CERTAIN)[0].record_id == "same"
