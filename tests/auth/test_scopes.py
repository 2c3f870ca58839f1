"""SMART scopes (App Launch 2.x "Scopes and Launch Context"): v2 `cruds` permissions, v1 `.read` /
`.write`, `?param=value` filters; write never implies read; narrowing never widens a grant."""

from __future__ import annotations

import pytest

from gateway.auth.scopes import (
    Restriction,
    Scope,
    ScopeError,
    allows,
    narrow,
    parse_scope,
    parse_scopes,
    patient_confined,
    restriction,
)

ALL = frozenset({"create", "read", "update", "delete", "search"})


@pytest.mark.parametrize(
    ("text", "context", "rtype", "interactions", "filters"),
    [
        ("system/Patient.rs", "system", "Patient", {"read", "search"}, ()),
        ("user/*.cruds", "user", "*", ALL, ()),
        ("patient/Observation.r", "patient", "Observation", {"read"}, ()),
        ("system/Encounter.cud", "system", "Encounter", {"create", "update", "delete"}, ()),
        ("system/Patient.read", "system", "Patient", {"read", "search"}, ()),
        ("system/Patient.write", "system", "Patient", {"create", "update", "delete"}, ()),
        ("user/*.*", "user", "*", ALL, ()),
        (
            "system/Observation.rs?category=vital-signs",
            "system",
            "Observation",
            {"read", "search"},
            (("category", "vital-signs"),),
        ),
        (
            "system/Observation.s?status=final&category=http://terminology.hl7.org/CodeSystem/observation-category|lab",
            "system",
            "Observation",
            {"search"},
            (("category", "http://terminology.hl7.org/CodeSystem/observation-category|lab"), ("status", "final")),
        ),
    ],
)
def test_parse_scope(text: str, context: str, rtype: str, interactions: set[str], filters: tuple) -> None:
    scope = parse_scope(text)
    assert scope == Scope(context, rtype, frozenset(interactions), filters)


@pytest.mark.parametrize(
    "text",
    [
        "system/Patient.sr",  # v2 letters must be in cruds order
        "system/Patient.",
        "system/Patient.x",
        "system/Patient.rr",
        "admin/Patient.rs",
        "system/patient.rs",  # resource types start upper-case
        "system/Patient",
        "system/Patient.read?status=final",  # filters are v2-only
        "system/Observation.rs?",
        "system/Observation.rs?=x",
        "system/Observation.rs?category",
    ],
)
def test_parse_scope_rejects_malformed(text: str) -> None:
    with pytest.raises(ScopeError):
        parse_scope(text)


def test_v2_form_is_canonical() -> None:
    assert str(parse_scope("system/Patient.read")) == "system/Patient.rs"
    assert str(parse_scope("system/Patient.write")) == "system/Patient.cud"
    assert str(parse_scope("user/*.*")) == "user/*.cruds"
    assert (
        str(parse_scope("system/Observation.rs?category=vital-signs")) == "system/Observation.rs?category=vital-signs"
    )


def test_parse_scopes_skips_non_resource_scopes() -> None:
    assert [str(s) for s in parse_scopes("openid fhirUser launch/patient system/Patient.rs")] == ["system/Patient.rs"]


@pytest.mark.parametrize(
    ("scopes", "interaction", "rtype", "expected"),
    [
        (["system/Patient.rs"], "read", "Patient", True),
        (["system/Patient.rs"], "search", "Patient", True),
        (["system/Patient.rs"], "create", "Patient", False),
        (["system/Patient.rs"], "read", "Observation", False),
        (["system/*.rs"], "read", "Observation", True),
        (["system/Patient.cud"], "read", "Patient", False),  # write does not imply read
        (["system/Patient.cud"], "search", "Patient", False),
        (["system/Patient.write"], "read", "Patient", False),
        (["system/Patient.write"], "update", "Patient", True),
        (["system/Patient.read"], "update", "Patient", False),
        (["system/Patient.c", "system/Patient.r"], "read", "Patient", True),
        (["system/Patient.sr"], "read", "Patient", False),  # malformed scopes grant nothing
        ([], "read", "Patient", False),
    ],
)
def test_allows(scopes: list[str], interaction: str, rtype: str, expected: bool) -> None:
    assert allows(scopes, interaction, rtype) is expected


def test_allows_rejects_unknown_interaction() -> None:
    with pytest.raises(ValueError):
        allows(["system/*.cruds"], "patch", "Patient")


def test_restriction_returns_filters_to_and_into_the_search() -> None:
    scopes = ["system/Observation.rs?category=vital-signs", "system/Observation.s?category=laboratory&status=final"]
    assert restriction(scopes, "search", "Observation") == Restriction(
        (
            (("category", "laboratory"), ("status", "final")),
            (("category", "vital-signs"),),
        )
    )
    assert restriction(scopes, "read", "Observation") == Restriction(((("category", "vital-signs"),),))
    assert restriction(scopes, "create", "Observation") is None


def test_an_unfiltered_scope_is_unrestricted() -> None:
    found = restriction(["system/Observation.rs?category=vital-signs", "system/*.rs"], "search", "Observation")
    assert found is not None and found.unrestricted


@pytest.mark.parametrize(
    ("requested", "registered", "granted"),
    [
        ("system/Patient.rs", "system/*.cruds", ["system/Patient.rs"]),
        ("system/*.cruds", "system/Patient.rs system/Encounter.cu", ["system/Patient.rs", "system/Encounter.cu"]),
        ("system/Patient.cruds", "system/Patient.rs", ["system/Patient.rs"]),
        ("system/Patient.read", "system/Patient.rs", ["system/Patient.rs"]),
        ("system/Patient.c", "system/Patient.rs", []),  # no common permission
        ("user/Patient.rs", "system/Patient.rs", []),  # contexts never cross
        ("system/Observation.rs", "system/Patient.rs", []),
        (
            "system/Observation.rs",
            "system/Observation.rs?category=vital-signs",
            ["system/Observation.rs?category=vital-signs"],
        ),
        (
            "system/Observation.rs?status=final",
            "system/*.rs?category=vital-signs",
            ["system/Observation.rs?category=vital-signs&status=final"],
        ),
        ("openid system/Patient.rs system/Patient.sr", "system/Patient.rs", ["system/Patient.rs"]),
        ("system/Patient.rs system/Patient.read", "system/Patient.rs", ["system/Patient.rs"]),
    ],
)
def test_narrow_grants_the_intersection(requested: str, registered: str, granted: list[str]) -> None:
    assert narrow(requested.split(), registered.split()) == granted


@pytest.mark.parametrize(
    ("scopes", "interaction", "rtype", "confined"),
    [
        ("patient/*.rs", "read", "Observation", True),
        ("patient/Observation.rs", "search", "Observation", True),
        ("patient/*.rs system/Observation.rs", "read", "Observation", False),  # the wider grant wins
        ("patient/*.rs user/*.rs", "search", "Patient", False),
        ("patient/*.rs system/Patient.rs", "read", "Observation", True),
        ("system/*.rs", "read", "Observation", False),
        ("patient/Observation.c", "read", "Observation", False),  # nothing allows it: not "confined"
    ],
)
def test_patient_confined(scopes: str, interaction: str, rtype: str, confined: bool) -> None:
    assert patient_confined(scopes.split(), interaction, rtype) is confined


def test_a_tokens_scope_set_is_answered_as_its_list_is() -> None:
    """A token's scopes (a frozenset) take a remembered path: the same answers as parsing them anew."""
    held = ["patient/Observation.rs?category=vital-signs", "user/Encounter.r", "system/Patient.cruds", "bogus"]
    for interaction in ("read", "search", "create", "delete"):
        for rtype in ("Observation", "Encounter", "Patient", "Flag"):
            assert restriction(frozenset(held), interaction, rtype) == restriction(list(held), interaction, rtype)
            assert restriction(frozenset(held), interaction, rtype) == restriction(frozenset(held), interaction, rtype)
