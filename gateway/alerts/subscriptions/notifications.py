"""Notification Bundles of the R5 Backport IG for R4, built as pure functions (state in, JSON out).

Every notification is a `history` Bundle whose first entry is a `Parameters` resource in the
backport-subscription-status-r4 shape; the entries after it carry the payload:

- `empty`: nothing after the status, and the status names no focus (only event numbers), so a
  receiver learns that something happened but not to whom;
- `id-only`: one entry per event with `fullUrl` and `request`/`response`, no resource;
- `full-resource`: as id-only plus the resource, where the caller supplied it (already filtered
  by the consent engine). A focus the caller could not supply degrades to id-only.

Bundle ids are UUIDv5 of (subscription, type, event numbers, time), so the builders need no random
source and the same inputs give the same bundle.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from gateway.alerts.subscriptions.backport import (
    PAYLOAD_CONTENTS,
    PROFILE_NOTIFICATION_R4,
    PROFILE_STATUS_R4,
    NotificationType,
    PayloadContent,
)
from gateway.alerts.subscriptions.records import EventRecord, SubscriptionState
from gateway.fhir.errors import invalid
from gateway.types import JSON

_METHOD = {"create": ("POST", "201"), "update": ("PUT", "200"), "delete": ("DELETE", "204")}


def instant(moment: datetime) -> str:
    """A naive-UTC datetime as an R4 `instant` (with the `Z` R4 requires)."""
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def subscription_url(fhir_base: str, sub_id: str) -> str:
    return f"{fhir_base.rstrip('/')}/Subscription/{sub_id}"


def status_parameters(
    state: SubscriptionState,
    kind: NotificationType,
    *,
    fhir_base: str,
    content: PayloadContent,
    events: Sequence[EventRecord] = (),
) -> JSON:
    """The backport-subscription-status-r4 `Parameters` for `state` and the `events` it reports."""
    base = fhir_base.rstrip("/")
    params: list[JSON] = [
        {"name": "subscription", "valueReference": {"reference": subscription_url(base, state.sub_id)}},
        {"name": "topic", "valueCanonical": state.topic},
        {"name": "status", "valueCode": state.status},
        {"name": "type", "valueCode": kind},
        # int64 has no R4 type, hence the IG's string
        {"name": "events-since-subscription-start", "valueString": str(state.events_since_start)},
    ]
    for event in events:
        parts: list[JSON] = [
            {"name": "event-number", "valueString": str(event.number)},
            {"name": "timestamp", "valueInstant": instant(event.created_at)},
        ]
        if content != "empty":
            parts.append({"name": "focus", "valueReference": {"reference": f"{base}/{event.focus_reference}"}})
            parts.extend(
                {"name": "additional-context", "valueReference": {"reference": _absolute(base, ref)}}
                for ref in event.context
            )
        params.append({"name": "notification-event", "part": parts})
    if state.status == "error" and state.last_error and kind == "query-status":
        params.append({"name": "error", "valueCodeableConcept": {"text": state.last_error}})
    return {"resourceType": "Parameters", "meta": {"profile": [PROFILE_STATUS_R4]}, "parameter": params}


def notification_bundle(
    state: SubscriptionState,
    kind: NotificationType,
    *,
    fhir_base: str,
    content: PayloadContent,
    now: datetime,
    events: Sequence[EventRecord] = (),
    resources: Mapping[str, JSON] | None = None,
    included: Sequence[JSON] = (),
) -> JSON:
    """A notification (handshake, heartbeat, event-notification or query-event) history Bundle.

    `resources` maps `Type/id` to the focus resource for `full-resource` payloads; `included` are
    further resources for such payloads (ignored for other contents).
    """
    base = fhir_base.rstrip("/")
    bundle_id = _bundle_id(state.sub_id, kind, events, now)
    entries: list[JSON] = [
        {
            "fullUrl": f"urn:uuid:{bundle_id}",
            "resource": status_parameters(state, kind, fhir_base=base, content=content, events=events),
            "request": {"method": "GET", "url": f"Subscription/{state.sub_id}/$status"},
            "response": {"status": "200"},
        }
    ]
    if content != "empty":
        for event in events:
            entries.append(_focus_entry(base, event, (resources or {}) if content == "full-resource" else {}))
        if content == "full-resource":
            entries.extend(_included_entry(base, r) for r in included)
    return {
        "resourceType": "Bundle",
        "id": str(bundle_id),
        "meta": {"profile": [PROFILE_NOTIFICATION_R4]},
        "type": "history",
        "timestamp": instant(now),
        "entry": entries,
    }


def status_bundle(states: Sequence[SubscriptionState], *, fhir_base: str, now: datetime) -> JSON:
    """The `$status` response: a searchset of one query-status `Parameters` per subscription."""
    entries = [
        {
            "fullUrl": f"urn:uuid:{_bundle_id(s.sub_id, 'query-status', (), now)}",
            "resource": status_parameters(s, "query-status", fhir_base=fhir_base, content="empty"),
            "search": {"mode": "match"},
        }
        for s in states
    ]
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": instant(now),
        "total": len(entries),
        "entry": entries,
    }


def events_bundle(
    state: SubscriptionState,
    events: Sequence[EventRecord],
    *,
    fhir_base: str,
    content: PayloadContent,
    now: datetime,
    resources: Mapping[str, JSON] | None = None,
) -> JSON:
    """The `$events` response: a query-event notification over the logged `events`."""
    return notification_bundle(
        state, "query-event", fhir_base=fhir_base, content=content, now=now, events=events, resources=resources
    )


@dataclass(frozen=True)
class EventsQuery:
    """Checked `$events` parameters."""

    since: int | None
    until: int | None
    content: PayloadContent


def parse_events_query(
    since: str | None, until: str | None, content: str | None, *, default: PayloadContent
) -> EventsQuery:
    """Check `eventsSinceNumber`, `eventsUntilNumber` and `content`; raises `FhirError` (invalid)."""
    low = _event_number(since, "eventsSinceNumber")
    high = _event_number(until, "eventsUntilNumber")
    if low is not None and high is not None and low > high:
        raise invalid("eventsSinceNumber is greater than eventsUntilNumber", ["eventsSinceNumber"])
    if content is not None and content not in PAYLOAD_CONTENTS:
        raise invalid("content must be empty, id-only or full-resource", ["content"])
    return EventsQuery(low, high, cast(PayloadContent, content) if content else default)


def _event_number(value: str | None, name: str) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or int(value) < 1:
        raise invalid(f"{name} must be a positive event number", [name])
    return int(value)


def _focus_entry(base: str, event: EventRecord, resources: Mapping[str, JSON]) -> JSON:
    method, status = _METHOD.get(event.interaction or "", ("GET", "200"))
    url = event.focus_type if method == "POST" else event.focus_reference
    entry: JSON = {
        "fullUrl": f"{base}/{event.focus_reference}",
        "request": {"method": method, "url": url},
        "response": {"status": status},
    }
    resource = resources.get(event.focus_reference)
    if resource is not None and method != "DELETE":
        entry["resource"] = resource
    return entry


def _included_entry(base: str, resource: JSON) -> JSON:
    ref = f"{resource.get('resourceType')}/{resource.get('id')}"
    return {
        "fullUrl": f"{base}/{ref}",
        "resource": resource,
        "request": {"method": "GET", "url": ref},
        "response": {"status": "200"},
    }


def _absolute(base: str, ref: str) -> str:
    return ref if "://" in ref or ref.startswith("urn:") else f"{base}/{ref}"


def _bundle_id(sub_id: str, kind: str, events: Sequence[EventRecord], now: datetime) -> uuid.UUID:
    numbers = ",".join(str(e.number) for e in events)
    return uuid.uuid5(uuid.NAMESPACE_URL, f"Subscription/{sub_id}|{kind}|{numbers}|{instant(now)}")
