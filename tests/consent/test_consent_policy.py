"""The default policy file: loads, validates, and its purpose hierarchy."""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest

from gateway.consent import PolicyConfigError, default_policy, parse_policy


def test_shipped_policy_loads_with_direct_care_default() -> None:
    policy = default_policy()
    assert policy.version
    assert policy.default_permit_purposes == {"TREAT"}
    assert policy.break_glass.ttl == timedelta(minutes=60)


def test_purpose_hierarchy_is_transitive() -> None:
    policy = default_policy()
    assert policy.purposes_of("BTG") == {"BTG", "ETREAT", "TREAT"}
    assert policy.is_direct_care("BTG") and policy.is_direct_care("COC")
    assert not policy.is_direct_care("HRESCH")


def test_missing_key_is_named() -> None:
    raw = copy.deepcopy(default_policy().raw)
    del raw["break_glass"]["roles"]
    with pytest.raises(PolicyConfigError, match=r"break_glass\.roles"):
        parse_policy(raw)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("break_glass", "ttl_minutes"), 0, "ttl_minutes"),
        (("labels", "unknown_labels"), "maybe", "unknown_labels"),
        (("purposes", "default_permit"), "TREAT", "default_permit"),
        (("version",), "", "version"),
    ],
)
def test_bad_values_are_refused(path: tuple[str, ...], value: object, message: str) -> None:
    raw = copy.deepcopy(default_policy().raw)
    node = raw
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(PolicyConfigError, match=message):
        parse_policy(raw)
