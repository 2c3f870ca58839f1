"""The shipped SubscriptionTopics (R4B shape) and what the gateway reads from them."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from fhir.resources.R4B.subscriptiontopic import SubscriptionTopic

from gateway.alerts.subscriptions import Topic, topic_from_resource
from gateway.codes import TOPIC_CARE_PLAN_CHANGED, TOPIC_EPISODE_CHANGED, TOPIC_PRESENTED, TOPIC_WARD_LIST
from gateway.paths import PROFILES_DIR


@pytest.mark.parametrize("path", sorted(PROFILES_DIR.glob("SubscriptionTopic-*.json")), ids=lambda p: p.stem)
def test_topic_files_are_valid_r4b(path: Path) -> None:
    data = orjson.loads(path.read_bytes())
    topic = SubscriptionTopic.model_validate(data)
    assert topic.status == "active"
    assert topic.resourceTrigger and topic.canFilterBy and topic.notificationShape


def test_every_topic_canonical_in_codes_has_a_file(topics: dict[str, Topic]) -> None:
    assert set(topics) == {TOPIC_PRESENTED, TOPIC_EPISODE_CHANGED, TOPIC_CARE_PLAN_CHANGED, TOPIC_WARD_LIST}


def test_presented_focus_is_the_alert_communication(topics: dict[str, Topic]) -> None:
    presented = topics[TOPIC_PRESENTED]
    assert presented.resource_types == {"Communication"}
    assert set(presented.filters["Communication"]) == {"patient", "organization", "care-manager", "ward"}


def test_ward_list_focus_is_a_list(topics: dict[str, Topic]) -> None:
    ward = topics[TOPIC_WARD_LIST]
    assert ward.resource_types == {"List"}
    assert set(ward.filters["List"]) == {"ward", "organization"}


def test_topic_from_resource_reads_type_names_and_modifiers() -> None:
    topic = topic_from_resource(
        {
            "resourceType": "SubscriptionTopic",
            "url": "https://example.org/t",
            "status": "active",
            "resourceTrigger": [{"resource": "http://hl7.org/fhir/StructureDefinition/Encounter"}],
            "canFilterBy": [{"resource": "Encounter", "filterParameter": "patient", "modifier": ["not"]}],
        }
    )
    assert topic.resource_types == {"Encounter"}
    assert topic.filters["Encounter"]["patient"] == {"not"}
    with pytest.raises(ValueError):
        topic_from_resource({"resourceType": "Patient"})


def test_public_names_resolve_and_are_unique() -> None:
    import gateway.alerts.subscriptions as package

    assert len(set(package.__all__)) == len(package.__all__)
    assert all(hasattr(package, name) for name in package.__all__)
