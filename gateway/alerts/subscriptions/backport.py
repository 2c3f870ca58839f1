"""Canonical URLs and code lists of the Subscriptions R5 Backport IG that this package speaks.

Kept in one place so parsing (what clients send) and building (what the gateway sends) agree.
"""

from __future__ import annotations

from typing import Literal

_IG = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition"

EXT_FILTER_CRITERIA = f"{_IG}/backport-filter-criteria"
EXT_PAYLOAD_CONTENT = f"{_IG}/backport-payload-content"
EXT_HEARTBEAT_PERIOD = f"{_IG}/backport-heartbeat-period"
EXT_TIMEOUT = f"{_IG}/backport-timeout"
EXT_MAX_COUNT = f"{_IG}/backport-max-count"
EXT_CHANNEL_TYPE = f"{_IG}/backport-channel-type"

PROFILE_SUBSCRIPTION = f"{_IG}/backport-subscription"
PROFILE_STATUS_R4 = f"{_IG}/backport-subscription-status-r4"
PROFILE_NOTIFICATION_R4 = f"{_IG}/backport-subscription-notification-r4"

FHIR_JSON = "application/fhir+json"

ChannelType = Literal["rest-hook", "websocket"]
PayloadContent = Literal["empty", "id-only", "full-resource"]
NotificationType = Literal["handshake", "heartbeat", "event-notification", "query-status", "query-event"]
# R4 Subscription.status: `requested` until the handshake succeeds, then `active`; `error` after
# repeated delivery failure; `off` only when the client turns it off.
SubscriptionStatus = Literal["requested", "active", "error", "off"]

CHANNEL_TYPES: frozenset[str] = frozenset({"rest-hook", "websocket"})
PAYLOAD_CONTENTS: frozenset[str] = frozenset({"empty", "id-only", "full-resource"})
STATUSES: frozenset[str] = frozenset({"requested", "active", "error", "off"})
