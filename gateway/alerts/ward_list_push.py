"""The nightly ward-list push: every ward's list, per receiving organisation, without being asked.

At a configured local wall time (default 20:00 Europe/London) the gateway builds, for each
receiving organisation, each ward's list as that organisation may see it (consent decided through
a Repository bound to the organisation) and

- writes it as CSV into a drop folder, `<drop>/<org id>/<ward id>-<YYYY-MM-DD>.csv`, atomically
  (temporary file in the same folder, fsync, rename), for systems that upload files; and/or
- stores it as a FHIR `List` with a deterministic id per ward + organisation + date, so a rerun
  replaces the day's list instead of adding one. Storing it is all this module does for
  subscribers: the write's outbox event reaches the alert pipeline, which delivers it on the
  ward-list topic (`gateway.codes.TOPIC_WARD_LIST`).

Receiving organisations: those with a Subscription (not `off`) on the ward-list topic carrying an
`organization` filter (optionally narrowed by a `ward` filter), plus the configured receivers.

Contract for the topic's filters on the stored List (`canFilterBy` List.ward / List.organization):
the List carries extension `EXT_VIRTUAL_WARD` (valueReference `Location/<ward id>`) and extension
`EXT_WARD_LIST_RECIPIENT` (valueReference `Organization/<id>`); it is tagged
`WARD_LIST_TAG_SYSTEM|<ward id>` in `meta.tag`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gateway.alerts.registry import EXT_VIRTUAL_WARD, CaseManagedEntry, ref_id, relative_ref
from gateway.alerts.subscriptions.spec import parse_filter
from gateway.alerts.subscriptions.topics import Topic, load_topics
from gateway.alerts.ward_list import WardListRow, to_csv, to_fhir_list
from gateway.alerts.ward_list_service import (
    WardListConfig,
    current_ward_list,
    patient_visibility,
    receiver_repository,
    ward_entries,
    wards_of,
)
from gateway.codes import EXT_BASE, TOPIC_WARD_LIST
from gateway.fhir.errors import FhirError
from gateway.fhir.repository import Guard
from gateway.fhir.search.parse import parse_search
from gateway.fhir.services import Services
from gateway.logging import get_logger
from gateway.store.api import Store, UnitOfWork
from gateway.types import JSON

log = get_logger("gateway.alerts.ward_list_push")

EXT_WARD_LIST_RECIPIENT = f"{EXT_BASE}/ward-list-recipient"
_SAFE = re.compile(r"[^A-Za-z0-9.-]")

# Receiving organisation -> the wards it asked for (None: every ward).
Receivers = dict[str, frozenset[str] | None]


# -- schedule (pure) ---------------------------------------------------------------------------


def next_run(now: datetime, at: time, zone: ZoneInfo) -> datetime:
    """The first instant strictly after `now` at which the wall clock in `zone` reads `at`.

    `now` must be timezone-aware; the answer is in `zone`. Across the clock changes: a wall time
    that occurs twice (autumn) runs once, at its first occurrence; one that is skipped (spring)
    runs at the same distance past the jump (PEP 495, e.g. 01:30 -> 02:30 BST), never not at all.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    now_utc = now.astimezone(UTC)
    day = now.astimezone(zone).date()
    while True:
        # Compare in UTC: aware datetimes sharing a tzinfo compare by wall time, ignoring fold.
        candidate = datetime.combine(day, at, tzinfo=zone)
        utc = candidate.astimezone(UTC)
        if utc > now_utc:
            return utc.astimezone(zone)
        day += timedelta(days=1)


# -- receivers -----------------------------------------------------------------------------------


def _filters_of(subscription: JSON) -> list[str]:
    ext = (subscription.get("_criteria") or {}).get("extension") or []
    return [e["valueString"] for e in ext if isinstance(e, dict) and isinstance(e.get("valueString"), str)]


def subscription_receivers(subscriptions: Iterable[JSON], topic: Topic) -> Receivers:
    """Organisations (and their wards) named by `organization` / `ward` filters on the ward-list topic.

    Pure. A subscription without an organisation filter names no receiver (the list is per
    organisation); one that is `off` or on another topic is ignored; a malformed filter is skipped.
    """
    found: dict[str, set[str] | None] = {}
    for sub in subscriptions:
        criteria = str(sub.get("criteria") or "").split("|", 1)[0]
        if criteria != topic.url or sub.get("status") == "off":
            continue
        orgs: list[str] = []
        wards: set[str] = set()
        for text in _filters_of(sub):
            try:
                parsed = parse_filter(text, topic)
            except FhirError:
                log.warning("ward_list.subscription_filter_invalid", subscription=sub.get("id"))
                continue
            for flt in parsed:
                if flt.param == "organization":
                    orgs.extend(relative_ref(v) or v for v in flt.values)
                elif flt.param == "ward":
                    wards.update(ref_id(v) or v for v in flt.values)
        for org in orgs:
            if org in found and found[org] is None:
                continue
            found[org] = None if not wards else (found.get(org) or set()) | wards
    return {org: (frozenset(w) if w is not None else None) for org, w in sorted(found.items())}


def receiving_organisations(uow: UnitOfWork, configured: Iterable[str], topic: Topic) -> Receivers:
    """Subscribers on the ward-list topic plus the configured receivers (who get every ward)."""
    parsed = parse_search(
        uow.store.registry,
        "Subscription",
        [("criteria", topic.url), ("_total", "none")],
        strict=True,
        default_count=1000,
        max_count=1000,
    )
    subs = [row.json() for row in uow.search(parsed.query).rows if row.content is not None]
    receivers: Receivers = dict(subscription_receivers(subs, topic))
    for org in configured:
        receivers[relative_ref(org) or org] = None
    return dict(sorted(receivers.items()))


# -- building and writing ----------------------------------------------------------------------


@dataclass(frozen=True)
class WardListOutput:
    """One ward's list for one receiving organisation."""

    organization: str
    ward_id: str
    ward_name: str
    rows: tuple[WardListRow, ...]


@dataclass
class PushReport:
    run_date: date
    lists: list[str] = field(default_factory=list)  # stored List ids
    files: list[Path] = field(default_factory=list)


def build_outputs(
    store: Store, guard: Guard | None, receivers: Mapping[str, frozenset[str] | None], *, now: datetime
) -> list[WardListOutput]:
    """Every receiver's lists, each decided under that receiver's own access context."""
    outputs: list[WardListOutput] = []
    with store.reader() as uow:
        entries = ward_entries(uow, ward=None, now=now)
        names = wards_of(entries)
        for org, wanted in receivers.items():
            repo = receiver_repository(store, org, guard)
            visible = patient_visibility(repo, uow, [e.patient_id for e in entries])
            for ward_id, ward_name in names.items():
                if wanted is not None and ward_id not in wanted:
                    continue
                on_ward: list[CaseManagedEntry] = [e for e in entries if e.ward_id == ward_id]
                rows = current_ward_list(uow, ward=ward_id, visible=visible, entries=on_ward)
                outputs.append(WardListOutput(org, ward_id, ward_name, tuple(rows)))
    return outputs


def write_atomic(path: Path, text: str) -> None:
    """Write `text` so a reader of `path` sees the old file or the whole new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def drop_path(folder: Path, organization: str, ward_id: str, day: date) -> Path:
    org = _SAFE.sub("_", ref_id(organization) or organization)
    return folder / org / f"{_SAFE.sub('_', ward_id)}-{day.isoformat()}.csv"


def list_resource(output: WardListOutput, *, source_ref: str, now: datetime) -> JSON:
    """The stored List: `to_fhir_list` plus the extensions the ward-list topic filters on."""
    resource = to_fhir_list(
        output.rows,
        ward_id=output.ward_id,
        ward_name=output.ward_name,
        organisation_ref=output.organization,
        source_ref=source_ref,
        now=now,
    )
    resource["extension"] = [
        {
            "url": EXT_VIRTUAL_WARD,
            "valueReference": {"reference": f"Location/{output.ward_id}", "display": output.ward_name},
        },
        {"url": EXT_WARD_LIST_RECIPIENT, "valueReference": {"reference": output.organization}},
    ]
    return resource


def run_push(services: Services, *, now: datetime, config: WardListConfig | None = None) -> PushReport:
    """Build and deliver tonight's lists (files and/or stored Lists). Safe to rerun the same day."""
    config = config or WardListConfig.from_sources(services.settings, services.extras)
    local_now = now.astimezone(config.zone)
    report = PushReport(run_date=local_now.date())
    topic = load_topics()[TOPIC_WARD_LIST]
    store = services.store
    with store.reader() as uow:
        receivers = receiving_organisations(uow, config.receivers, topic)
    outputs = build_outputs(store, services.extras.get("guard"), receivers, now=local_now)
    if config.write_files:
        folder = config.drop_folder(services.settings.data_dir)
        for out in outputs:
            path = drop_path(folder, out.organization, out.ward_id, report.run_date)
            write_atomic(path, to_csv(out.rows))
            report.files.append(path)
    if config.store_lists and outputs:
        with store.writer() as wuow:
            for out in outputs:
                stored, _ = wuow.update(list_resource(out, source_ref=config.source, now=local_now))
                report.lists.append(stored.id)
    log.info(
        "ward_list.pushed",
        receivers=len(receivers),
        lists=len(report.lists),
        files=len(report.files),
        date=report.run_date.isoformat(),
    )
    return report


# -- scheduler -----------------------------------------------------------------------------------


Clock = Callable[[], datetime]
Sleep = Callable[[float], Awaitable[Any]]


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def push_forever(
    services: Services,
    config: WardListConfig,
    *,
    clock: Clock = _utcnow,
    sleep: Sleep = asyncio.sleep,
) -> None:
    """Sleep until the next run time, push (in a worker thread), repeat; a failed run is logged
    and retried at the next run time (tomorrow's list supersedes it anyway)."""
    while True:
        due = next_run(clock(), config.push_time, config.zone)
        # Sleep in bounded steps so a suspended machine or a clock change never oversleeps a night.
        while (left := (due - clock()).total_seconds()) > 0:
            await sleep(min(left, 300.0))
        try:
            await asyncio.to_thread(run_push, services, now=clock(), config=config)
        except Exception:
            log.exception("ward_list.push_failed", due=due.isoformat())


def install(services: Services, *, config: WardListConfig | None = None) -> None:
    """Run the nightly push while the app runs (added to `services.extras` startup/shutdown hooks).

    In a deployment of several gateway processes install it in one only (or rely on the rerun being
    idempotent: the same List ids and file names are written again).
    """
    conf = config or WardListConfig.from_sources(services.settings, services.extras)
    holder: dict[str, asyncio.Task[None]] = {}

    async def start() -> None:
        holder["task"] = asyncio.create_task(push_forever(services, conf), name="ward-list-push")
        log.info("ward_list.scheduled", at=conf.push_time.isoformat("minutes"), timezone=conf.timezone)

    async def stop() -> None:
        task = holder.pop("task", None)
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    services.extras.setdefault("startup", []).append(start)
    services.extras.setdefault("shutdown", []).append(stop)
