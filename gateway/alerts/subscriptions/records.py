"""Value objects shared by the event log, the notification builders and delivery."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gateway.alerts.subscriptions.backport import SubscriptionStatus
from gateway.types import JSON


@dataclass(frozen=True)
class EventFocus:
    """What a topic event is about, as the event producer hands it over.

    `resource` is the focus as the subscriber may see it (already consent-filtered) and is only
    used for `full-resource` payloads; `included` are further resources for such payloads
    (e.g. the Encounter of a presentation alert). `context` lists additional-context references.
    """

    res_type: str
    res_id: str
    version: int | None = None
    interaction: str | None = None  # create | update | delete
    context: tuple[str, ...] = ()
    resource: JSON | None = None
    included: tuple[JSON, ...] = ()

    @property
    def reference(self) -> str:
        return f"{self.res_type}/{self.res_id}"


@dataclass(frozen=True)
class EventRecord:
    """One numbered event in a subscription's log."""

    sub_id: str
    number: int
    topic: str
    focus_type: str
    focus_id: str
    focus_version: int | None
    interaction: str | None
    context: tuple[str, ...]
    created_at: datetime
    delivered_at: datetime | None = None
    attempts: int = 0

    @property
    def focus_reference(self) -> str:
        return f"{self.focus_type}/{self.focus_id}"


@dataclass(frozen=True)
class SubscriptionState:
    """The server-side status of one Subscription (the `subscription_status` row)."""

    sub_id: str
    topic: str
    status: SubscriptionStatus
    events_since_start: int
    last_delivered_event: int
    error_count: int
    last_error: str | None
    heartbeat_period: int | None
    next_heartbeat: datetime | None
    updated_at: datetime
