"""Topic-based Subscriptions for R4 (Subscriptions R5 Backport IG): parsing, numbering, notifications, delivery.

Wiring left to the caller: load topics (`load_topics`), parse each stored Subscription
(`parse_subscription`), `Deliverer.activate` it on create/update, `Deliverer.publish` each matching
topic event after commit, and run `send_due_heartbeats` and `flush_pending` on a timer.
"""

from __future__ import annotations

from gateway.alerts.subscriptions.backport import ChannelType, NotificationType, PayloadContent, SubscriptionStatus
from gateway.alerts.subscriptions.channels import Channel, ChannelUnavailable, DeliveryError, RestHookChannel
from gateway.alerts.subscriptions.deliverer import Deliverer, ResourceResolver, utcnow
from gateway.alerts.subscriptions.notifications import (
    EventsQuery,
    events_bundle,
    notification_bundle,
    parse_events_query,
    status_bundle,
    status_parameters,
)
from gateway.alerts.subscriptions.records import EventFocus, EventRecord, SubscriptionState
from gateway.alerts.subscriptions.repository import SubscriptionStateRepository, heartbeat_due
from gateway.alerts.subscriptions.retry import RetryPolicy, backoff_delay
from gateway.alerts.subscriptions.spec import Filter, SubscriptionSpec, matches, parse_filter, parse_subscription
from gateway.alerts.subscriptions.topics import Topic, load_topics, topic_from_resource
from gateway.alerts.subscriptions.websocket import (
    DEFAULT_WS_PATH,
    BindingToken,
    BindingTokens,
    ConnectionManager,
    WebSocketChannel,
    binding_token_parameters,
    repository_handshake,
    websocket_router,
)

__all__ = [
    "DEFAULT_WS_PATH",
    "BindingToken",
    "BindingTokens",
    "Channel",
    "ChannelType",
    "ChannelUnavailable",
    "ConnectionManager",
    "Deliverer",
    "DeliveryError",
    "EventFocus",
    "EventRecord",
    "EventsQuery",
    "Filter",
    "NotificationType",
    "PayloadContent",
    "ResourceResolver",
    "RestHookChannel",
    "RetryPolicy",
    "SubscriptionSpec",
    "SubscriptionState",
    "SubscriptionStateRepository",
    "SubscriptionStatus",
    "Topic",
    "WebSocketChannel",
    "backoff_delay",
    "binding_token_parameters",
    "events_bundle",
    "heartbeat_due",
    "load_topics",
    "matches",
    "notification_bundle",
    "parse_events_query",
    "parse_filter",
    "parse_subscription",
    "repository_handshake",
    "status_bundle",
    "status_parameters",
    "topic_from_resource",
    "utcnow",
    "websocket_router",
]
