"""The virtual-ward alert pipeline: a bus consumer that turns committed writes into alerts and topic events.

Per committed write (read from the store by the version the event names):

- `EpisodeOfCare`: keep the case-managed registry in step; when the person stops being case-managed,
  end the Flags raised under that episode; publish `episode-of-care-changed`.
- `CarePlan`: publish `care-plan-changed`.
- `Encounter`: first a cheap screen per batch (index queries, one registry lookup) keeps only the
  Encounters that can change an alert; those are classified against the previous version
  (`rules.detect_presentation`); for a presentation, find the person across linked Patient records
  (`identity_links`), ask the registry, and if case-managed write the Flag, the Communication (with
  why it fired) and, on admission, the discharge-planning Task in ONE transaction under ids
  derived from the encounter's dedupe key, with the `case-managed-person-presented` events
  numbered for their subscribers in that same transaction: an alert written is an alert numbered
  for delivery. A resource already there is left alone (unless it was retracted), so repeated or
  updated messages of one visit alert nobody twice; a new visit is a new key and alerts again. A
  retraction takes the alert back (`content.retract`).
- `Communication` (presentation-alert): publish `case-managed-person-presented` unless its version
  was numbered already: by this process as it wrote the alert (remembered), or by the process that
  wrote it (another gateway, or a run that died before announcing it: one query on the event log
  finds it, before anything is read or decided). Only a version nobody numbered (a client's write,
  a retraction) is read, decided and numbered here; numbering is once per version either way.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from sqlalchemy import and_, bindparam, or_, select

from gateway.alerts.content import alert_ids, build_alert, end_flag, retract
from gateway.alerts.identity_links import LinkedPatients, linked_patients_many
from gateway.alerts.reasoning import EXT_ALERT_REASONING, build_reasoning, from_extension
from gateway.alerts.registry import CaseManagedEntry, CaseManagedRegistry, ref_id, relative_ref
from gateway.alerts.rules import (
    PRESENTATION_KEY_SYSTEM,
    Presentation,
    Retraction,
    dedupe_key,
    detect_presentation,
    during_episode,
)
from gateway.alerts.subscription_service import EventLike, Numbered, SubscriptionService
from gateway.alerts.subscriptions import EventFocus
from gateway.codes import (
    ALERT_CODE_SYSTEM,
    PRESENTATION_ALERT,
    TOPIC_CARE_PLAN_CHANGED,
    TOPIC_EPISODE_CHANGED,
    TOPIC_PRESENTED,
)
from gateway.events.dedupe import RecentSeqs
from gateway.events.threads import in_thread
from gateway.fhir.errors import FhirError
from gateway.store import probes
from gateway.store.api import Store, StoredResource, UnitOfWork
from gateway.store.schema import resource as resource_table
from gateway.store.schema import sp_reference
from gateway.store.search.query import Criterion, SearchQuery
from gateway.types import JSON

log = structlog.get_logger(__name__)

AUTHOR_REF = "Device/care-gateway"
"""The gateway itself, as author of the alerts it raises."""
EXT_MATCH_VIA = "match-via"
"""Extra sub-extension of the reasoning extension: how the case-managed record was reached."""
RETRACTED_STATUSES = frozenset({"entered-in-error", "cancelled"})
_LOAD_LIMIT = 100_000
_PEOPLE = ("Practitioner/", "PractitionerRole/")
_HANDLED = frozenset({"EpisodeOfCare", "CarePlan", "Encounter", "Communication"})


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _json(stored: StoredResource | None) -> JSON | None:
    if stored is None or stored.deleted or stored.content is None:
        return None
    return stored.json()


def _split(reference: str) -> tuple[str, str]:
    rtype, _, rid = reference.partition("/")
    return rtype, rid


def is_presentation_alert(resource: JSON) -> bool:
    return any(
        c.get("system") == ALERT_CODE_SYSTEM and c.get("code") == PRESENTATION_ALERT
        for concept in resource.get("category") or []
        for c in concept.get("coding") or []
    )


def _alert_refs(key: str) -> list[tuple[str, str]]:
    ids = alert_ids(key)
    return [("Flag", ids.flag), ("Communication", ids.communication), ("Task", ids.task)]


def _alert_rows(
    uow: UnitOfWork, keys: Iterable[str], people: Iterable[tuple[str, str]] = ()
) -> tuple[dict[tuple[str, str], JSON], set[tuple[str, str]], dict[str, JSON]]:
    """The alert resources of these visits as stored now, those stored only as a tombstone, and the
    current versions of `people` (care managers, teams) by reference: on PostgreSQL all in one
    probe query (one round trip fewer inside the alert's write transaction), on SQLite in two."""
    visits = list(dict.fromkeys(keys))
    wanted = list(dict.fromkeys(people))
    if uow.conn.dialect.name == "postgresql":
        refs = [ref for key in visits for ref in _alert_refs(key)]
        ours = set(refs)
        rows = probes.resource_rows(uow.conn, refs + [ref for ref in wanted if ref not in ours])
        found = {
            f"{row.res_type}/{row.res_id}": orjson.loads(row.content)
            for row in rows
            if (row.res_type, row.res_id) not in ours and not row.deleted and row.content is not None
        }
        rows = [row for row in rows if (row.res_type, row.res_id) in ours]
    else:
        rows = _alert_resource_rows(uow, visits, with_content=True)
        found = {s.reference: s.json() for s in uow.fetch_many(wanted)}
    live = {
        (row.res_type, row.res_id): orjson.loads(row.content)
        for row in rows
        if not row.deleted and row.content is not None
    }
    return live, {(row.res_type, row.res_id) for row in rows if row.deleted}, found


def _ward_values(ward_id: str | None) -> list[str]:
    return [f"Location/{ward_id}", ward_id] if ward_id else []


def presented_filter_values(communication: JSON, episode: JSON | None) -> dict[str, list[str]]:
    """Filter values of a presentation alert: both people records, both organisations, manager, ward.

    The presenting organisation's own subscription (`organization=<presenting org>`) and the case
    manager's side (`organization=<managing org>`, `care-manager=…`, `ward=…`) all match.
    """
    reasoning = from_extension(communication)
    recipients = [r for x in communication.get("recipient") or [] if (r := relative_ref(x.get("reference")))]
    patients = [relative_ref((communication.get("subject") or {}).get("reference"))]
    organisations = [relative_ref((communication.get("sender") or {}).get("reference"))]
    organisations += [r for r in recipients if r.startswith("Organization/")]
    if episode is not None:
        organisations.append(relative_ref((episode.get("managingOrganization") or {}).get("reference")))
    if reasoning is not None:
        patients.append(relative_ref(reasoning.presenting_patient))
    return {
        "patient": [p for p in patients if p],
        "organization": [o for o in organisations if o],
        "care-manager": [r for r in recipients if r.startswith(_PEOPLE)],
        "ward": _ward_values(reasoning.ward if reasoning else None),
    }


def _add_match_via(communication: JSON, how: str) -> None:
    for ext in communication.get("extension") or []:
        if ext.get("url") == EXT_ALERT_REASONING:
            ext.setdefault("extension", []).append({"url": EXT_MATCH_VIA, "valueString": how})


@dataclass(frozen=True)
class Alert:
    """A presentation of a case-managed person, to be written as an alert."""

    entry: CaseManagedEntry
    presentation: Presentation
    linked: LinkedPatients
    version: int
    encounter: JSON | None = None  # the version that presented, for the notification's payload


_BATCHED = frozenset({"Encounter", "Communication"})


def _runs(events: Sequence[EventLike]) -> Iterator[tuple[str, list[EventLike]]]:
    """The batch as runs of one kind, in seq order between the other handled types ("*": enrolments,
    care plans), which keep their place. Between two of those, the Communications form one run, then
    the Encounters another, whatever their interleaving: a Communication between two Encounters cost
    a second screen, classification and write transaction. Communications go first: each was
    committed before the batch was read, so none is a version the Encounters' handling writes, and
    numbering them first never puts a version after a newer one."""
    segment: dict[str, list[EventLike]] = {"Communication": [], "Encounter": []}
    for event in events:
        if event.res_type in _BATCHED:
            segment[event.res_type].append(event)
        elif event.res_type in _HANDLED:
            yield from ((kind, run) for kind, run in segment.items() if run)
            segment = {"Communication": [], "Encounter": []}
            yield "*", [event]
    yield from ((kind, run) for kind, run in segment.items() if run)


class AlertPipeline:
    """Bus consumer for EpisodeOfCare, CarePlan, Encounter and presentation-alert Communication writes."""

    def __init__(
        self,
        store: Store,
        registry: CaseManagedRegistry,
        subscriptions: SubscriptionService,
        *,
        author_ref: str = AUTHOR_REF,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.store = store
        self.registry = registry
        self.subscriptions = subscriptions
        self._author = author_ref
        self._clock = clock
        self._handled = RecentSeqs()
        self._published = RecentSeqs()  # (Communication id, version) published when written

    async def load_registry(self) -> int:
        """Rebuild the registry from every active EpisodeOfCare (start-up); returns how many case-manage."""
        episodes = await in_thread(self._active_episodes)
        held = 0
        for episode in episodes:
            if await self.registry.apply_episode(episode) is not None:
                held += 1
        log.info("alerts.registry_loaded", episodes=len(episodes), case_managed=held)
        return held

    def _active_episodes(self) -> list[JSON]:
        param = self.store.registry.get("EpisodeOfCare", "status")
        criteria = (Criterion(param, ("active",)),) if param is not None else ()
        with self.store.reader() as uow:
            page = uow.search(SearchQuery("EpisodeOfCare", criteria, count=_LOAD_LIMIT, total="none"))
        return [row.json() for row in page.rows]

    async def handle(self, event: EventLike) -> None:
        """Consumer entry point; events already handled here are repeats and are skipped."""
        if event.seq in self._handled:
            return
        handler = {
            "EpisodeOfCare": self._episode,
            "CarePlan": self._care_plan,
            "Encounter": self._encounter,
            "Communication": self._communication,
        }.get(event.res_type)
        if handler is not None:
            await handler(event)
        self._handled.add(event.seq)

    async def handle_batch(self, events: Sequence[EventLike]) -> None:
        """Several events at once: Encounters are classified in one read and their alerts written in
        ONE transaction; presentation-alert Communications are published with one numbering
        transaction. Runs of one type are handled together (`_runs`).
        """
        fresh = [e for e in events if e.seq not in self._handled]
        for rtype, run in _runs(fresh):
            if rtype == "Encounter":
                await self._encounters(run)
            elif rtype == "Communication":
                await self._communications(run)
            else:
                for event in run:
                    await self.handle(event)
            for event in run:
                self._handled.add(event.seq)

    # --- reading ----------------------------------------------------------------------------------

    def _version(self, event: EventLike) -> JSON | None:
        with self.store.reader() as uow:
            return self._vread(uow, event.res_type, event.res_id, event.version_id)

    @staticmethod
    def _vread(uow: UnitOfWork, rtype: str, rid: str, version: int) -> JSON | None:
        if version < 1:
            return None
        try:
            return uow.vread(rtype, rid, version).json()
        except FhirError:  # not found / gone (tombstone)
            return None

    # --- EpisodeOfCare and CarePlan ------------------------------------------------------------------

    async def _episode(self, event: EventLike) -> None:
        episode = None if event.method == "DELETE" else await in_thread(self._version, event)
        if episode is None:
            await self.registry.remove_episode(event.res_id)
            entry = None
        else:
            entry = await self.registry.apply_episode(episode)
        if entry is None:
            ended = await in_thread(self._end_flags, event.res_id)
            if ended:
                log.info("alerts.flags_ended", episode=event.res_id, flags=ended)
        values = self._episode_values(episode or {}, entry)
        await self.subscriptions.publish(TOPIC_EPISODE_CHANGED, self._focus(event, episode), values)

    @staticmethod
    def _episode_values(episode: JSON, entry: CaseManagedEntry | None) -> dict[str, list[str]]:
        refs = {
            "patient": relative_ref((episode.get("patient") or {}).get("reference")),
            "organization": relative_ref((episode.get("managingOrganization") or {}).get("reference")),
            "care-manager": relative_ref((episode.get("careManager") or {}).get("reference")),
        }
        values = {k: [v] if v else [] for k, v in refs.items()}
        values["ward"] = _ward_values(entry.ward_id if entry else None)
        return values

    def _end_flags(self, episode_id: str) -> int:
        """Flags raised under this episode (found through its alerts' Communications) become inactive."""
        param = self.store.registry.get("Communication", "about")
        if param is None:
            return 0
        query = SearchQuery(
            "Communication", (Criterion(param, (f"EpisodeOfCare/{episode_id}",)),), count=_LOAD_LIMIT, total="none"
        )
        now = self._clock()
        ended = 0
        with self.store.writer() as uow:
            keys = [
                i["value"]
                for row in uow.search(query).rows
                for i in row.json().get("identifier") or []
                if i.get("system") == PRESENTATION_KEY_SYSTEM and i.get("value")
            ]
            for flag in uow.fetch_many(("Flag", alert_ids(k).flag) for k in keys):
                current = flag.json()
                if current.get("status") == "active":
                    uow.update(end_flag(current, now=now))
                    ended += 1
        return ended

    async def _care_plan(self, event: EventLike) -> None:
        plan = None if event.method == "DELETE" else await in_thread(self._version, event)
        plan = plan or {}
        patient = relative_ref((plan.get("subject") or {}).get("reference"))
        author = relative_ref((plan.get("author") or {}).get("reference"))
        values: dict[str, list[str]] = {
            "patient": [patient] if patient else [],
            "care-team": [r for t in plan.get("careTeam") or [] if (r := relative_ref(t.get("reference")))],
            "organization": [author] if author and author.startswith("Organization/") else [],
            "care-manager": [author] if author and author.startswith(_PEOPLE) else [],
            "ward": [],
        }
        if patient:  # the plan's person's episodes say which ward and manager it belongs to
            for entry in await self.registry.lookup([str(ref_id(patient))]):
                values["care-manager"].append(entry.care_manager)
                values["ward"] += _ward_values(entry.ward_id)
                if entry.managing_organization:
                    values["organization"].append(entry.managing_organization)
        await self.subscriptions.publish(TOPIC_CARE_PLAN_CHANGED, self._focus(event, plan or None), values)

    # --- Encounter -----------------------------------------------------------------------------------

    async def _encounter(self, event: EventLike) -> None:
        await self._encounters([event])

    async def _encounters(self, events: Sequence[EventLike]) -> None:
        live = [e for e in events if e.method != "DELETE"]
        if not live:
            return
        live, links, managed = await self._may_alert(live)
        if not live:
            return
        found = await in_thread(self._classify_many, live, links)
        # one registry lookup for the records the screen did not look up already (Redis: one round trip)
        wanted = {pid for _, detection, linked, _ in found if linked is not None for pid in linked.ids}
        missing = sorted(wanted - managed.keys())
        if missing:
            managed.update(_by_patient(missing, await self.registry.lookup(missing)))
        work: list[Alert | Retraction] = []
        for event, detection, linked, encounter in found:
            if isinstance(detection, Retraction):
                work.append(detection)
                continue
            entries = _entries_of(managed, linked.ids) if linked is not None else []
            entries = [e for e in entries if during_episode(detection.time, e.since)]
            if entries and linked is not None:
                # one alert per visit, under the first episode (ordered by patient, episode)
                work.append(Alert(entries[0], detection, linked, event.version_id, encounter))
        if not work:
            return
        written, numbered = await in_thread(self._write_all, work)
        for item, resources in zip(work, written, strict=True):
            refs = [f"{r['resourceType']}/{r['id']}" for r in resources]
            if isinstance(item, Retraction):
                if refs:
                    log.info("alerts.retracted", encounter=item.encounter_ref, reason=item.reason)
                continue
            log.info(
                "alerts.presentation",
                encounter=item.presentation.encounter_ref,
                rule=item.presentation.rule,
                episode=item.entry.episode_id,
                written=refs,
            )
        if numbered is not None:
            self.subscriptions.announce(numbered)
            for _, focus, _ in numbered.items:
                self._published.add((focus.res_id, focus.version))

    @staticmethod
    def _presented(
        alert: Alert, communication: JSON, known: Mapping[tuple[str, str], JSON]
    ) -> tuple[str, EventFocus, Mapping[str, Iterable[str]]]:
        """The presented-topic event of an alert Communication just written, from what is in hand.

        Publishing it here, rather than when the Communication's own outbox event comes round,
        saves that round trip; the outbox event still comes (and is recognised as published), so
        a crash in between loses nothing.
        """
        ids = alert_ids(alert.presentation.dedupe_key)
        included = [alert.encounter] if alert.encounter is not None else []
        included += [known[ref] for ref in (("Flag", ids.flag), ("Task", ids.task)) if ref in known]
        version = int((communication.get("meta") or {}).get("versionId", 1))
        focus = EventFocus(
            res_type="Communication",
            res_id=communication["id"],
            version=version,
            interaction="create" if version == 1 else "update",
            context=tuple(f"{r['resourceType']}/{r['id']}" for r in included),
            resource=communication,
            included=tuple(included),
        )
        org = alert.entry.managing_organization
        episode = {"managingOrganization": {"reference": org}} if org else None
        return TOPIC_PRESENTED, focus, presented_filter_values(communication, episode)

    async def _may_alert(
        self, events: Sequence[EventLike]
    ) -> tuple[list[EventLike], dict[str, LinkedPatients], dict[str, list[CaseManagedEntry]]]:
        """The Encounter events that can change an alert: those whose person (or a record linked to
        it) is case-managed, whose visit has an alert already (a cancel takes it back), and any this
        cheap screen cannot place; all events of an Encounter go on when one does. The rest, most
        Encounters, cost three index queries a batch and one registry lookup, with no resource read
        or parse (`_classify_many` needs both). Also returns the links found, by presenting record,
        and the registry's entries of every record looked up (none: an empty list), for the alerts.
        """
        screened = await in_thread(self._screen, events)
        ids = sorted({pid for linked in screened if linked is not None for pid in linked.ids})
        managed = _by_patient(ids, await self.registry.lookup(ids)) if ids else {}
        wanted = {
            event.res_id
            for event, linked in zip(events, screened, strict=True)
            if linked is None or any(managed.get(pid) for pid in linked.ids)
        }
        links = {linked.start: linked for linked in screened if linked is not None and linked.start}
        return [e for e in events if e.res_id in wanted], links, managed

    def _screen(self, events: Sequence[EventLike]) -> list[LinkedPatients | None]:
        """Per event, the Patient records its person can be reached by; None when the event must go the
        full way (its visit has an alert, it is not the current version, or its subject is not a plain
        local Patient reference). An event with no subject gets an empty set: nobody to alert."""
        ids = list(dict.fromkeys(e.res_id for e in events))
        with self.store.reader(autocommit=True) as uow:  # reads only: no BEGIN/COMMIT round trips
            current, alerted = _screen_reads(uow, ids)
            subjects: list[str | object | None] = []
            for event in events:
                known = current.get(event.res_id)
                if known is None or known[0] != event.version_id or event.res_id in alerted:
                    subjects.append(_OTHER)
                else:
                    subjects.append(known[1])
            linked = linked_patients_many(uow, [pid for pid in subjects if isinstance(pid, str)])
        nobody = LinkedPatients("", {})
        return [None if pid is _OTHER else linked[pid] if isinstance(pid, str) else nobody for pid in subjects]

    def _classify_many(
        self, events: Sequence[EventLike], links: Mapping[str, LinkedPatients] | None = None
    ) -> list[tuple[EventLike, Presentation | Retraction, LinkedPatients | None, JSON]]:
        """Classify a run of Encounter versions with a fixed handful of queries for all of them
        (`links`: presenting records already followed, by id)."""
        with self.store.reader(autocommit=True) as uow:  # reads only: no BEGIN/COMMIT round trips
            wanted = [(e.res_id, v) for e in events for v in (e.version_id, e.version_id - 1) if v >= 1]
            versions, triggers = _classify_reads(uow, wanted, [(e.res_id, e.version_id) for e in events])
            found: list[tuple[EventLike, Presentation | Retraction, str | None, JSON]] = []
            for event in events:
                encounter = versions.get((event.res_id, event.version_id))
                if encounter is None:
                    continue
                previous = versions.get((event.res_id, event.version_id - 1))
                trigger = triggers.get((event.res_id, event.version_id))
                detection = detect_presentation(encounter, previous, source_event=trigger)
                if detection is None:
                    continue
                if isinstance(detection, Retraction):
                    found.append((event, detection, None, encounter))
                    continue
                subject = relative_ref(detection.subject_ref)
                if subject and subject.startswith("Patient/"):
                    found.append((event, detection, str(ref_id(subject)), encounter))
            known = links or {}
            linked = dict(known)
            linked.update(linked_patients_many(uow, [p for _, _, p, _ in found if p is not None and p not in known]))
        return [(e, detection, linked[pid] if pid else None, enc) for e, detection, pid, enc in found]

    def _write_all(self, work: Sequence[Alert | Retraction]) -> tuple[list[list[JSON]], Numbered | None]:
        """Write every alert and retraction of a batch in ONE transaction, in order, and number their
        presented-topic events in it too (consent decided per subscriber first): an alert written is
        an alert numbered for delivery. Returns the resources written per item and the numbering, to
        `announce` once committed.

        Two workers creating the same alert at once: the loser's transaction fails with a conflict
        and is retried once, when it finds the winner's resources and leaves them alone.
        """
        for attempt in range(2):
            try:
                with self.store.writer() as uow:
                    written, known = self._write_all_in(uow, work)
                    notify = [
                        self._presented(item, r, known)
                        for item, resources in zip(work, written, strict=True)
                        if isinstance(item, Alert)
                        for r in resources
                        if r["resourceType"] == "Communication"
                    ]
                    numbered = self.subscriptions.number_in(uow, notify) if notify else None
                    return written, numbered
            except FhirError as exc:
                if attempt or exc.status != 409:
                    raise
        return [], None  # pragma: no cover

    def _write_all_in(
        self, uow: UnitOfWork, work: Sequence[Alert | Retraction]
    ) -> tuple[list[list[JSON]], dict[tuple[str, str], JSON]]:
        """The batch's writes with its reads done up front: every alert resource of every visit in
        one query, every care manager and team in another; new resources are created unread (the
        inserts go out together at commit). `known` follows the writes, so a visit that comes twice
        in one batch, or with its cancel, is handled as it would be one event at a time."""
        keys = [item.dedupe_key if isinstance(item, Retraction) else item.presentation.dedupe_key for item in work]
        refs = [
            _split(ref)
            for item in work
            if isinstance(item, Alert)
            for ref in (item.entry.care_manager, *item.entry.teams[:1])
        ]
        known, tombstones, people = _alert_rows(uow, keys, refs)
        out: list[list[JSON]] = []
        for item, key in zip(work, keys, strict=True):
            if isinstance(item, Retraction):
                existing = [known[r] for r in _alert_refs(key) if r in known]
                resources = retract(existing, reason=item.reason, now=self._clock())
            else:
                existing_by_type = {t: known[(t, i)] for t, i in _alert_refs(key) if (t, i) in known}
                resources = self._alert_resources(item, existing_by_type, people)
            written: list[JSON] = []
            for resource in resources:
                ref = (resource["resourceType"], resource["id"])
                if ref in known or ref in tombstones:
                    stored, _ = uow.update(resource)
                else:
                    # the usual case: create under the derived id, with no read-back (a concurrent creator
                    # of the same alert makes this transaction fail with a conflict, and it is retried)
                    stored = uow.create(resource, rid=resource["id"])
                known[ref] = stored.json()
                written.append(known[ref])
            out.append(written)
        return out, known

    def _alert_resources(
        self, alert: Alert, existing: Mapping[str, JSON], people: Mapping[str, JSON] | None = None
    ) -> list[JSON]:
        """What of the alert must be written: the resources missing, or taken back before."""
        entry, presentation = alert.entry, alert.presentation
        now = self._clock()
        sent = (existing.get("Communication") or {}).get("sent")
        if sent:  # the alert keeps the time it was first raised, so rewriting it stays idempotent
            with suppress(ValueError):
                now = datetime.fromisoformat(str(sent).replace("Z", "+00:00"))
        people = people or {}
        care_manager = people.get(entry.care_manager)
        team = people.get(entry.teams[0]) if entry.teams else None
        reasoning = build_reasoning(presentation, entry, match_grade="certain", resource_version=str(alert.version))
        resources = build_alert(
            entry, presentation, care_manager, author_ref=self._author, now=now, team=team, reasoning=reasoning
        )
        due: list[JSON] = []
        for resource in resources:
            if resource["resourceType"] == "Communication":
                _add_match_via(resource, alert.linked.how(entry.patient_id))
            old = existing.get(resource["resourceType"])
            if old is None or old.get("status") in RETRACTED_STATUSES:
                due.append(resource)
        return due

    # --- Communication -> presented topic ---------------------------------------------------------------

    async def _communication(self, event: EventLike) -> None:
        await self._communications([event])

    async def _communications(self, events: Sequence[EventLike]) -> None:
        # those this process published as it wrote them need nothing more
        live = [e for e in events if e.method != "DELETE" and (e.res_id, e.version_id) not in self._published]
        if not live:
            return
        found = await in_thread(self._alerts_with_context, live)
        items: list[tuple[str, EventFocus, Mapping[str, Iterable[str]]]] = []
        for event, (communication, episode, included) in found:
            focus = EventFocus(
                res_type="Communication",
                res_id=event.res_id,
                version=event.version_id,
                interaction="create" if event.version_id == 1 else "update",
                context=tuple(f"{r['resourceType']}/{r['id']}" for r in included),
                resource=communication,
                included=tuple(included),
            )
            items.append((TOPIC_PRESENTED, focus, presented_filter_values(communication, episode)))
        if items:
            await self.subscriptions.publish_many(items)

    def _alerts_with_context(
        self, events: Sequence[EventLike]
    ) -> list[tuple[EventLike, tuple[JSON, JSON | None, list[JSON]]]]:
        with self.store.reader(autocommit=True) as uow:  # reads only: no BEGIN/COMMIT round trips
            # Written and numbered by another process (or by this one before a restart): its
            # subscribers were decided and numbered with the write, so there is nothing to publish.
            foci = [("Communication", e.res_id, e.version_id) for e in events]
            done = self.subscriptions.numbered_versions(uow, TOPIC_PRESENTED, foci)
            found = [
                (event, self._alert_context_in(uow, event))
                for event, focus in zip(events, foci, strict=True)
                if focus not in done
            ]
        return [(event, got) for event, got in found if got is not None]

    def _alert_context_in(self, uow: UnitOfWork, event: EventLike) -> tuple[JSON, JSON | None, list[JSON]] | None:
        communication = self._vread(uow, "Communication", event.res_id, event.version_id)
        if communication is None or not is_presentation_alert(communication):
            return None
        about = [r for a in communication.get("about") or [] if (r := relative_ref(a.get("reference")))]
        episode_ref = next((r for r in about if r.startswith("EpisodeOfCare/")), None)
        episode = _json(uow.get(*_split(episode_ref))) if episode_ref else None
        keys = [
            i["value"]
            for i in communication.get("identifier") or []
            if i.get("system") == PRESENTATION_KEY_SYSTEM and i.get("value")
        ]
        refs: list[tuple[str, str]] = [_split(r) for r in about if r.startswith("Encounter/")]
        for key in keys[:1]:
            refs += [("Flag", alert_ids(key).flag), ("Task", alert_ids(key).task)]
        included = [s.json() for s in uow.fetch_many(refs)]
        return communication, episode, included

    @staticmethod
    def _focus(event: EventLike, resource: JSON | None) -> EventFocus:
        interaction = {"POST": "create", "DELETE": "delete"}.get(event.method, "update")
        return EventFocus(event.res_type, event.res_id, event.version_id, interaction, resource=resource)


def _by_patient(ids: Iterable[str], entries: Iterable[CaseManagedEntry]) -> dict[str, list[CaseManagedEntry]]:
    """Registry entries by Patient id, every id asked for present (an empty list: not case-managed)."""
    out: dict[str, list[CaseManagedEntry]] = {pid: [] for pid in ids}
    for entry in entries:
        out.setdefault(entry.patient_id, []).append(entry)
    return out


def _entries_of(managed: Mapping[str, list[CaseManagedEntry]], patient_ids: Iterable[str]) -> list[CaseManagedEntry]:
    """What `registry.lookup(patient_ids)` answers, from entries looked up before: ordered by patient, episode."""
    found = {(e.patient_id, e.episode_id): e for pid in set(patient_ids) for e in managed.get(pid, ())}
    return [found[key] for key in sorted(found)]


_V2_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/v2-0003"
_OTHER = object()
"""A subject that is not a plain local Patient reference (another type, a URL, a bare id)."""


def _screen_reads(
    uow: UnitOfWork, encounter_ids: Sequence[str]
) -> tuple[dict[str, tuple[int, str | object | None]], set[str]]:
    """Per live Encounter its current version and the Patient id of its subject, from the search index
    (None: no subject; `_OTHER`: a subject that is not a plain local Patient reference); and the
    Encounters whose visit already has a live alert resource. Two queries: on PostgreSQL a probe per
    key whatever the statistics say (`gateway.store.probes`), both in one round trip."""
    keys = {rid: dedupe_key({"id": rid}) for rid in encounter_ids}
    by_ref = {ref: rid for rid, key in keys.items() for ref in _alert_refs(key)}
    if uow.conn.dialect.name == "postgresql":
        n = len(encounter_ids)
        subjects = {"types": ["Encounter"] * n, "ids": list(encounter_ids), "params": ["subject"] * n}
        subject_rows, alert_rows = probes.pg_rows_together(
            uow.conn, [(_PG_SUBJECTS_SQL, subjects), (probes.RESOURCE_ROWS_SQL, probes.key_params(list(by_ref)))]
        )
        alert_rows = [row for row in alert_rows if not row.deleted]
    else:
        subject_rows = list(uow.conn.execute(_subjects_query(), {"ids": list(encounter_ids)}))
        alert_rows = _alert_resource_rows(uow, list(keys.values()), with_content=False)
    out: dict[str, tuple[int, str | object | None]] = {}
    for row in subject_rows:
        if row.target_type is None and row.target_id is None and row.url is None:
            subject: str | object | None = None
        elif row.target_type == "Patient" and row.target_id and row.url is None:
            subject = str(row.target_id)
        else:
            subject = _OTHER
        if row.res_id in out:  # two subject rows: let the full classification decide
            subject = _OTHER
        out[row.res_id] = (int(row.version_id), subject)
    return out, {by_ref[(row.res_type, row.res_id)] for row in alert_rows}


def _alert_resource_rows(uow: UnitOfWork, keys: Sequence[str], *, with_content: bool) -> list[Any]:
    """The alert resources of these visits (dedupe keys): with content every row (tombstones
    included), without only live ones. On PostgreSQL a probe per resource, whatever the statistics
    say (`gateway.store.probes`)."""
    if uow.conn.dialect.name == "postgresql":
        rows = probes.resource_rows(uow.conn, [ref for key in keys for ref in _alert_refs(key)])
        return rows if with_content else [row for row in rows if not row.deleted]
    ids = [alert_ids(key) for key in keys]
    params = {
        "flags": [a.flag for a in ids],
        "communications": [a.communication for a in ids],
        "tasks": [a.task for a in ids],
    }
    return list(uow.conn.execute(_alerts_query(with_content=with_content), params))


# Statements built once (SQLAlchemy reuses their compiled form): the screen runs them for every batch.
# On PostgreSQL the subjects are read by a probe per Encounter (`gateway.store.probes`): its plan of
# the join below, with statistics from before any Encounter, walked every Encounter's index rows per id.
_PG_SUBJECTS_SQL = (
    f"SELECT k.id AS res_id, r.version_id, s.target_type, s.target_id, s.url "
    f"FROM unnest(CAST(%(types)s AS varchar[]), CAST(%(ids)s AS varchar[]), CAST(%(params)s AS varchar[])) "
    f"AS k(t, id, p) CROSS JOIN LATERAL (SELECT version_id FROM {resource_table.name} "
    f"WHERE res_type = k.t AND res_id = k.id AND deleted IS FALSE OFFSET 0) AS r "
    f"LEFT JOIN LATERAL (SELECT target_type, target_id, url FROM {sp_reference.name} "
    f"WHERE res_type = k.t AND res_id = k.id AND param = k.p OFFSET 0) AS s ON true"
)


@functools.cache
def _subjects_query() -> Any:
    r, sp = resource_table.c, sp_reference.c
    subject = and_(sp.res_type == "Encounter", sp.res_id == r.res_id, sp.param == "subject")
    return (
        select(r.res_id, r.version_id, sp.target_type, sp.target_id, sp.url)
        .select_from(resource_table.outerjoin(sp_reference, subject))
        .where(r.res_type == "Encounter", r.res_id.in_(bindparam("ids", expanding=True)), r.deleted.is_(False))
    )


@functools.cache
def _alerts_query(with_content: bool = False) -> Any:
    """The alert resources of visits (`flags`, `communications`, `tasks`: their ids): live ones, or
    with content every row, tombstones included."""
    r = resource_table.c
    query = select(r.res_type, r.res_id, r.deleted, r.content) if with_content else select(r.res_type, r.res_id)
    query = query.where(
        or_(
            and_(r.res_type == "Flag", r.res_id.in_(bindparam("flags", expanding=True))),
            and_(r.res_type == "Communication", r.res_id.in_(bindparam("communications", expanding=True))),
            and_(r.res_type == "Task", r.res_id.in_(bindparam("tasks", expanding=True))),
        )
    )
    return query if with_content else query.where(r.deleted.is_(False))


def hl7_trigger(uow: UnitOfWork, encounter_id: str, version: int) -> str | None:
    """The HL7 v2 trigger (A04, A01, A05 …) that wrote this Encounter version, from its Provenance."""
    return hl7_triggers(uow, [(encounter_id, version)]).get((encounter_id, version))


def hl7_triggers(uow: UnitOfWork, versions: Sequence[tuple[str, int]]) -> dict[tuple[str, int], str]:
    """The HL7 v2 triggers that wrote these Encounter versions (id, version), from their Provenance.

    The intake writes the Provenance in the same transaction as the Encounter, naming the exact
    version as target and the trigger as activity; Encounters from other sources have none.
    """
    ids = list(dict.fromkeys(rid for rid, _ in versions))
    if not ids:
        return {}
    if uow.conn.dialect.name == "postgresql":  # a probe per Encounter, whatever the statistics say
        rows = probes.pg_rows(uow.conn, probes.REFERRERS_SQL, probes.referring_params(*_PROVENANCE_OF, ids))
        return _triggers_of(_live_json(rows), versions)
    ref = sp_reference.c
    provenances = uow.conn.execute(
        sp_reference.select()
        .with_only_columns(ref.res_id)
        .where(ref.res_type == "Provenance", ref.param == "target", ref.target_type == "Encounter")
        .where(ref.target_id.in_(ids))
        .distinct()
    ).scalars()
    stored = uow.fetch_many(("Provenance", pid) for pid in sorted(set(provenances)))
    return _triggers_of([s.json() for s in stored], versions)


_PROVENANCE_OF = ("Provenance", "target", "Encounter")


def _live_json(rows: Iterable[Any]) -> list[JSON]:
    """The content of live rows, each resource once."""
    seen: dict[tuple[str, str], JSON] = {}
    for row in rows:
        if not row.deleted and row.content is not None and (row.res_type, row.res_id) not in seen:
            seen[(row.res_type, row.res_id)] = orjson.loads(row.content)
    return list(seen.values())


def _triggers_of(provenances: Iterable[JSON], versions: Sequence[tuple[str, int]]) -> dict[tuple[str, int], str]:
    wanted = {f"Encounter/{rid}/_history/{version}": (rid, version) for rid, version in versions}
    found: dict[tuple[str, int], str] = {}
    for prov in provenances:
        code = next(
            (
                str(c["code"])
                for c in (prov.get("activity") or {}).get("coding", [])
                if c.get("system") == _V2_EVENT_TYPE and c.get("code")
            ),
            None,
        )
        if code is None:
            continue
        for target in prov.get("target", []):
            reference = str(target.get("reference", ""))
            for suffix, key in wanted.items():
                if reference.endswith(suffix) and key not in found:
                    found[key] = code
    return found


def _classify_reads(
    uow: UnitOfWork, wanted: Sequence[tuple[str, int]], triggering: Sequence[tuple[str, int]]
) -> tuple[dict[tuple[str, int], JSON], dict[tuple[str, int], str]]:
    """`encounter_versions` and `hl7_triggers`: on PostgreSQL both reads in one round trip."""
    ids = list(dict.fromkeys(rid for rid, _ in triggering))
    if uow.conn.dialect.name != "postgresql" or not wanted or not ids:
        return encounter_versions(uow, wanted), hl7_triggers(uow, triggering)
    keys = [("Encounter", rid, version) for rid, version in sorted(set(wanted))]
    version_rows, referrers = probes.pg_rows_together(
        uow.conn,
        [
            (probes.VERSION_ROWS_SQL, probes.version_params(keys)),
            (probes.REFERRERS_SQL, probes.referring_params(*_PROVENANCE_OF, ids)),
        ],
    )
    versions = {
        (row.res_id, int(row.version_id)): orjson.loads(row.content)
        for row in version_rows
        if not row.deleted and row.content is not None
    }
    return versions, _triggers_of(_live_json(referrers), triggering)


def encounter_versions(uow: UnitOfWork, versions: Sequence[tuple[str, int]]) -> dict[tuple[str, int], JSON]:
    """These Encounter versions (id, version) as stored; deleted or unknown ones are left out (one query)."""
    return {
        (stored.id, stored.version_id): stored.json()
        for stored in uow.versions("Encounter", versions)
        if not stored.deleted and stored.content is not None
    }
