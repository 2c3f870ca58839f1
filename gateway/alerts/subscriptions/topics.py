"""The SubscriptionTopics this gateway serves, read from the R4B `SubscriptionTopic` files in `profiles/`.

The topic files are the one source of truth for which resources trigger a topic and which filters a
subscriber may use; code only reads them. A `Topic` keeps just what subscription parsing and
matching need.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from gateway.paths import PROFILES_DIR
from gateway.types import JSON


@dataclass(frozen=True)
class Topic:
    """One SubscriptionTopic: its canonical, trigger resources and allowed filters."""

    url: str
    title: str
    resource_types: frozenset[str]
    # resource type -> filter parameter -> allowed modifiers (empty: no modifier allowed)
    filters: Mapping[str, Mapping[str, frozenset[str]]] = field(default_factory=dict)

    def filter_resources(self, param: str) -> list[str]:
        """The resource types on which `param` may be filtered."""
        return sorted(rt for rt, params in self.filters.items() if param in params)


def _type_name(resource: str) -> str:
    # R4B topics name resources by StructureDefinition URL; filters use the bare type name.
    return resource.rstrip("/").rsplit("/", 1)[-1]


def topic_from_resource(resource: JSON) -> Topic:
    """Build a `Topic` from a SubscriptionTopic resource. Raises ValueError for a non-topic."""
    if resource.get("resourceType") != "SubscriptionTopic" or not resource.get("url"):
        raise ValueError("not a SubscriptionTopic with a url")
    triggers = frozenset(_type_name(t["resource"]) for t in resource.get("resourceTrigger", []))
    filters: dict[str, dict[str, frozenset[str]]] = {}
    for item in resource.get("canFilterBy", []):
        rt = _type_name(item.get("resource") or next(iter(sorted(triggers)), ""))
        filters.setdefault(rt, {})[item["filterParameter"]] = frozenset(item.get("modifier", []))
    return Topic(
        url=resource["url"],
        title=str(resource.get("title") or resource["url"]),
        resource_types=triggers,
        filters=filters,
    )


def load_topics(directory: Path = PROFILES_DIR) -> dict[str, Topic]:
    """Every `SubscriptionTopic-*.json` in `directory`, keyed by canonical URL."""
    topics: dict[str, Topic] = {}
    for path in sorted(directory.glob("SubscriptionTopic-*.json")):
        topic = topic_from_resource(orjson.loads(path.read_bytes()))
        topics[topic.url] = topic
    return topics
