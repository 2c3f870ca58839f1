"""fixtures/community/provider_transaction_bundle.json: a provider's FHIR transaction, checked and tagged."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from gateway.codes import SOURCE_TAG_SYSTEM
from gateway.mappings.community import map_bundle
from gateway.mappings.source import SourceSystem

TAG = {"system": SOURCE_TAG_SYSTEM, "code": "cp-northeast"}


@pytest.fixture
def bundle(load: Callable[[str], Any]) -> dict[str, Any]:
    data: dict[str, Any] = load("provider_transaction_bundle.json")
    return data


def test_transaction_accepted_and_every_resource_tagged(bundle: dict[str, Any], source: SourceSystem) -> None:
    original = copy.deepcopy(bundle)
    result = map_bundle(bundle, source=source)
    assert result.accepted and result.bundle is not None
    assert [e.resource_type for e in result.entries] == ["Patient", "Encounter", "ServiceRequest", "CareTeam"]
    assert result.bundle["type"] == "transaction"
    for entry in result.bundle["entry"]:
        assert entry["resource"]["meta"]["tag"] == [TAG]
    assert [e["fullUrl"] for e in result.bundle["entry"]] == [e["fullUrl"] for e in original["entry"]]
    assert bundle == original  # input untouched


def test_a_claimed_source_tag_is_replaced(bundle: dict[str, Any], source: SourceSystem) -> None:
    bundle["entry"][1]["resource"]["meta"] = {"tag": [{"system": SOURCE_TAG_SYSTEM, "code": "hospital-x"}]}
    result = map_bundle(bundle, source=source)
    assert result.bundle is not None
    assert result.bundle["entry"][1]["resource"]["meta"]["tag"] == [TAG]


def test_one_bad_entry_refuses_a_transaction(bundle: dict[str, Any], source: SourceSystem) -> None:
    bundle["entry"][0]["resource"]["identifier"][0]["value"] = "9990010103"  # check digit wrong
    result = map_bundle(bundle, source=source)
    assert not result.accepted and result.reasons == ("1 of 4 entries refused",)
    assert result.entries[0].reasons == ("Patient.identifier: NHS number fails the Modulus 11 check digit",)
    assert all(e.accepted for e in result.entries[1:])


def test_batch_keeps_the_good_entries(bundle: dict[str, Any], source: SourceSystem) -> None:
    bundle["type"] = "batch"
    bundle["entry"][1]["request"] = {"method": "DELETE", "url": "Encounter/1"}
    bundle["entry"][2]["resource"] = {"resourceType": "Claim", "status": "active"}
    bundle["entry"][3]["resource"]["period"] = {"start": "last Tuesday"}
    result = map_bundle(bundle, source=source)
    assert result.accepted and result.bundle is not None
    assert [e["resource"]["resourceType"] for e in result.bundle["entry"]] == ["Patient"]
    assert result.entries[1].reasons == ("request.method 'DELETE' is not allowed (POST or PUT only)",)
    assert result.entries[2].reasons == ("resource type 'Claim' is not accepted from a community provider",)
    assert result.entries[3].reasons[0].startswith("CareTeam.period.start")


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"resourceType": "Patient"}, "not a Bundle"),
        ({"resourceType": "Bundle", "type": "collection", "entry": []}, "Bundle.type must be transaction or batch"),
    ],
)
def test_not_a_transaction_or_batch(doc: dict[str, Any], reason: str, source: SourceSystem) -> None:
    result = map_bundle(doc, source=source)
    assert not result.accepted and result.reasons[0].startswith(reason)
