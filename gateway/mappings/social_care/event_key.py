"""Recognise the same CLD event across cumulative returns, which carry no event id.

Each quarter's return repeats every event since 1 April, with end dates and outcomes filled in
as they happen. NHS England's SALT scripts recognise a Service event by concatenating council,
person, client type, start date and the three service fields, leaving the end date out so an
open event and its later closed version meet. We hash the same fields (plus the event type, so a
Request and an Assessment starting the same day stay apart), using the resolved defined-list codes
so that 'Direct payment' and 'Direct Payment' are one event.
"""

from __future__ import annotations

import hashlib

from gateway.mappings.social_care import columns as c
from gateway.mappings.social_care.record import CldRecord

_SEPARATOR = "\x1f"  # cannot occur in a CSV cell a council typed


def event_key(record: CldRecord) -> str:
    """32 hex characters, stable across returns, releases and processes."""
    parts = [
        record.la_code.strip().upper(),
        record.person_id.strip(),
        record.client_type.code,
        record.event_type.code,
        record.event_start.isoformat(),
        *(_code(record, column) for column in (c.SERVICE_TYPE, c.SERVICE_COMPONENT, c.DELIVERY_MECHANISM)),
    ]
    return hashlib.sha256(_SEPARATOR.join(parts).encode("utf-8")).hexdigest()[:32]


def _code(record: CldRecord, column: str) -> str:
    concept = record.code(column)
    return concept.code if concept else ""
