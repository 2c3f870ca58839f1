"""Parse a client's R4 `Subscription` (backport profile) into a checked `SubscriptionSpec`.

Everything a client can get wrong is caught here, once, with an OperationOutcome that names the
element, so delivery code never meets a half-valid subscription. Only what the gateway really does
is accepted: topic-based criteria, rest-hook and websocket channels, JSON payloads.

Defaults chosen where R4 leaves a gap: no `channel.payload` means `empty` content (R4: no body);
a payload without the backport content extension means `id-only`, which never sends clinical
content the client did not ask for.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

from gateway.alerts.subscriptions.backport import (
    CHANNEL_TYPES,
    EXT_CHANNEL_TYPE,
    EXT_FILTER_CRITERIA,
    EXT_HEARTBEAT_PERIOD,
    EXT_MAX_COUNT,
    EXT_PAYLOAD_CONTENT,
    EXT_TIMEOUT,
    FHIR_JSON,
    PAYLOAD_CONTENTS,
    ChannelType,
    PayloadContent,
    SubscriptionStatus,
)
from gateway.alerts.subscriptions.topics import Topic
from gateway.consent.agreements import source_organization
from gateway.fhir.errors import invalid, not_supported
from gateway.types import JSON

# Headers the gateway owns on every POST; a client must not be able to change how the body is framed.
_RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "transfer-encoding", "connection"})
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_ACCEPTED_PAYLOADS = frozenset({FHIR_JSON, "application/json"})
_TYPE_NAME = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@dataclass(frozen=True)
class Filter:
    """One `filter-criteria` condition: `resource_type?param[:modifier]=v1,v2` (values are ORed)."""

    resource_type: str
    param: str
    values: tuple[str, ...]
    modifier: str | None = None


@dataclass(frozen=True)
class SubscriptionSpec:
    """What the gateway needs to serve one Subscription; filters are ANDed."""

    id: str
    status: SubscriptionStatus  # as requested by the client: `requested` or `off`
    topic: str
    channel_type: ChannelType
    content: PayloadContent
    endpoint: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    filters: tuple[Filter, ...] = ()
    heartbeat_period: int | None = None  # seconds
    timeout: int | None = None  # seconds
    max_count: int | None = None  # most events in one notification
    # the organisation whose client wrote it (`Organization/<id>`, its source tag): whose view
    # notifications are decided with; None for one the gateway itself wrote (internal: sees everything)
    source_organization: str | None = None

    @property
    def reference(self) -> str:
        return f"Subscription/{self.id}"


def parse_subscription(resource: JSON, topics: Mapping[str, Topic], *, require_https: bool = False) -> SubscriptionSpec:
    """Check a Subscription resource and return its spec.

    Raises `FhirError` (`invalid`, 400) for malformed input and (`not-supported`, 400) for channel
    types or payloads the gateway does not offer. With `require_https`, plain http endpoints are
    accepted on loopback only (tests, local receivers).
    """
    if not isinstance(resource, dict) or resource.get("resourceType") != "Subscription":
        raise invalid("resource is not a Subscription", ["Subscription"])
    sub_id = resource.get("id")
    if not isinstance(sub_id, str) or not _ID.match(sub_id):
        raise invalid("Subscription.id is missing or not a valid id", ["Subscription.id"])
    status = _status(resource.get("status"))
    topic = _topic(resource.get("criteria"), topics)
    filters = _filters(_extensions(resource.get("_criteria")), topic)
    channel = resource.get("channel")
    if not isinstance(channel, dict):
        raise invalid("Subscription.channel is required", ["Subscription.channel"])
    channel_type = _channel_type(channel)
    endpoint = _endpoint(channel.get("endpoint"), required=channel_type == "rest-hook", https=require_https)
    channel_ext = _extensions(channel)
    return SubscriptionSpec(
        id=sub_id,
        status=status,
        topic=topic.url,
        channel_type=channel_type,
        content=_content(channel),
        endpoint=endpoint,
        headers=_headers(channel.get("header", [])),
        filters=filters,
        heartbeat_period=_int_ext(channel_ext, EXT_HEARTBEAT_PERIOD, "valueUnsignedInt", "heartbeat period"),
        timeout=_int_ext(channel_ext, EXT_TIMEOUT, "valueUnsignedInt", "timeout"),
        max_count=_int_ext(channel_ext, EXT_MAX_COUNT, "valuePositiveInt", "max count"),
        source_organization=source_organization(resource),
    )


def _extensions(element: Any) -> list[JSON]:
    if not isinstance(element, dict):
        return []
    found = element.get("extension", [])
    return [e for e in found if isinstance(e, dict)] if isinstance(found, list) else []


def _status(value: Any) -> SubscriptionStatus:
    # The server owns `active` and `error`: a client asking for either still starts with a handshake.
    if value not in ("requested", "active", "error", "off"):
        raise invalid("Subscription.status must be requested, active, error or off", ["Subscription.status"])
    return "off" if value == "off" else "requested"


def _topic(criteria: Any, topics: Mapping[str, Topic]) -> Topic:
    if not isinstance(criteria, str) or not criteria:
        raise invalid("Subscription.criteria must be a SubscriptionTopic canonical URL", ["Subscription.criteria"])
    if "?" in criteria:
        raise not_supported(
            "query-based criteria are not supported: use a SubscriptionTopic canonical and filter-criteria"
        )
    url = criteria.split("|", 1)[0]  # a `|version` suffix names the same topic here
    topic = topics.get(url)
    if topic is None:
        raise invalid(f"unknown SubscriptionTopic {url!r}", ["Subscription.criteria"])
    return topic


def _filters(extensions: Iterable[JSON], topic: Topic) -> tuple[Filter, ...]:
    where = ["Subscription.criteria.extension"]
    found: list[Filter] = []
    for ext in extensions:
        if ext.get("url") != EXT_FILTER_CRITERIA:
            continue
        text = ext.get("valueString")
        if not isinstance(text, str) or not text.strip():
            raise invalid("filter-criteria needs a valueString like 'Encounter?patient=Patient/1'", where)
        found.extend(parse_filter(text.strip(), topic))
    return tuple(found)


def parse_filter(text: str, topic: Topic) -> list[Filter]:
    """Parse one `Resource?param=value[&param=value]` filter against what `topic` can filter by."""
    where = ["Subscription.criteria.extension"]
    resource_type, sep, query = text.partition("?")
    if not sep:  # bare `param=value`: the resource is implied when only one type carries that param
        resource_type, query = "", text
    if resource_type and not _TYPE_NAME.match(resource_type):
        raise invalid(f"filter {text!r}: {resource_type!r} is not a resource type", where)
    pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False)
    if not pairs:
        raise invalid(f"filter {text!r} has no param=value", where)
    filters: list[Filter] = []
    for key, raw in pairs:
        param, _, modifier = key.partition(":")
        rt = resource_type or _implied_type(param, topic, text)
        allowed = topic.filters.get(rt, {})
        if param not in allowed:
            names = ", ".join(sorted(f"{r}?{p}" for r, ps in topic.filters.items() for p in ps))
            raise invalid(f"filter {text!r}: topic {topic.url} cannot filter by {rt}.{param} ({names})", where)
        if modifier and modifier not in allowed[param]:
            raise invalid(f"filter {text!r}: modifier :{modifier} is not allowed on {param}", where)
        values = tuple(v.strip() for v in raw.split(",") if v.strip())
        if not values:
            raise invalid(f"filter {text!r}: {param} has no value", where)
        filters.append(Filter(resource_type=rt, param=param, values=values, modifier=modifier or None))
    return filters


def _implied_type(param: str, topic: Topic, text: str) -> str:
    types = topic.filter_resources(param)
    if len(types) != 1:
        raise invalid(
            f"filter {text!r}: name the resource, e.g. 'Resource?{param}=…'", ["Subscription.criteria.extension"]
        )
    return types[0]


def _channel_type(channel: JSON) -> ChannelType:
    custom = [e for e in _extensions(channel.get("_type")) if e.get("url") == EXT_CHANNEL_TYPE]
    if custom:
        code = (custom[0].get("valueCoding") or {}).get("code", "?")
        raise not_supported(f"channel type {code!r} is not supported (rest-hook, websocket)")
    value = channel.get("type")
    if not isinstance(value, str) or not value:
        raise invalid("Subscription.channel.type is required", ["Subscription.channel.type"])
    if value not in CHANNEL_TYPES:
        raise not_supported(f"channel type {value!r} is not supported (rest-hook, websocket)")
    return cast(ChannelType, value)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _endpoint(value: Any, *, required: bool, https: bool) -> str | None:
    where = ["Subscription.channel.endpoint"]
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise invalid("a rest-hook Subscription needs channel.endpoint", where)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise invalid("channel.endpoint must be an absolute http or https URL", where)
    if parts.username or parts.password:
        raise invalid("channel.endpoint must not carry credentials: use channel.header", where)
    if https and parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise invalid("channel.endpoint must use https", where)
    return value


def _headers(values: Any) -> tuple[tuple[str, str], ...]:
    where = ["Subscription.channel.header"]
    if not isinstance(values, list):
        raise invalid("channel.header must be a list of 'Name: value' strings", where)
    headers: list[tuple[str, str]] = []
    for item in values:
        name, sep, value = item.partition(":") if isinstance(item, str) else ("", "", "")
        name, value = name.strip(), value.strip()
        if not sep or not _HEADER_NAME.match(name) or "\r" in value or "\n" in value:
            raise invalid("channel.header entries must look like 'Name: value'", where)
        if name.lower() in _RESERVED_HEADERS:
            raise invalid(f"channel.header may not set {name}", where)
        headers.append((name, value))
    return tuple(headers)


def _content(channel: JSON) -> PayloadContent:
    where = ["Subscription.channel.payload"]
    payload = channel.get("payload")
    ext = [e for e in _extensions(channel.get("_payload")) if e.get("url") == EXT_PAYLOAD_CONTENT]
    if payload is None and not ext:
        return "empty"
    if payload is not None and payload not in _ACCEPTED_PAYLOADS:
        raise not_supported(f"payload {payload!r} is not supported (application/fhir+json)")
    if not ext:
        return "id-only"
    code = ext[0].get("valueCode")
    if code not in PAYLOAD_CONTENTS:
        raise invalid("payload content must be empty, id-only or full-resource", where)
    return cast(PayloadContent, code)


def _int_ext(extensions: list[JSON], url: str, key: str, what: str) -> int | None:
    ext = next((e for e in extensions if e.get("url") == url), None)
    if ext is None:
        return None
    value = ext.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise invalid(f"{what} must be a positive whole number ({key})", ["Subscription.channel.extension"])
    return value


def matches(spec: SubscriptionSpec, values: Mapping[str, Iterable[str]]) -> bool:
    """True when an event with these filter `values` (param -> values the event carries) passes.

    The event producer computes `values` from the focus (and the case-management episode) for every
    parameter the topic lists in `canFilterBy`. References compare on their `Type/id` tail, so
    `Patient/1` matches `https://host/fhir/Patient/1`.
    """
    for flt in spec.filters:
        have = {_ref_key(v) for v in values.get(flt.param, ())}
        if not any(_ref_key(v) in have for v in flt.values):
            return False
    return True


def _ref_key(value: str) -> str:
    parts = value.rstrip("/").split("/")
    if len(parts) >= 2 and _TYPE_NAME.match(parts[-2]):
        return f"{parts[-2]}/{parts[-1]}"
    return value
