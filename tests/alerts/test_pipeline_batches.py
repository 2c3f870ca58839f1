"""The alert pipeline fed whole bus batches (`handle_batch`), as the relay and Redis bus now do.

A batch holding the same visit twice, or a visit and its cancel, or arriving twice (redelivery),
must come out exactly as event-by-event handling would: one alert per visit, a cancel retracts,
and event numbers without gaps or repeats.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from gateway.alerts.install import install
from gateway.alerts.pipeline import _runs
from gateway.alerts.subscription_service import SubscriptionService
from gateway.events.dedupe import RecentSeqs
from gateway.fhir.services import Services
from gateway.store.schema import outbox
from tests.alerts.test_pipeline import ALERTS, Event, Pump, Receiver, encounter, enrol, receiver, subscription

__all__ = ["receiver"]  # the module-scoped webhook receiver fixture, shared with test_pipeline


class BatchPump:
    """Hands every committed write not yet handed over to each consumer as ONE batch per round."""

    def __init__(self, services: Services, consumers: dict[str, Any]) -> None:
        self.services = services
        self.consumers = consumers
        self.seq = 0

    def pending(self) -> list[Event]:
        with self.services.store.engine.connect() as conn:
            rows = list(conn.execute(select(outbox).where(outbox.c.seq > self.seq).order_by(outbox.c.seq)))
        return [Event(r.seq, r.res_type, r.res_id, r.version_id, r.method, r.created_at) for r in rows]

    async def feed(self, events: list[Event]) -> None:
        for name in ("subscriptions", "alerts"):
            consumer = self.consumers[name]
            if hasattr(consumer, "handle_batch"):
                await consumer.handle_batch(events)
            else:
                for event in events:
                    await consumer.handle(event)
        service: SubscriptionService = self.consumers["subscriptions"]
        await service.idle()

    async def __call__(self) -> list[list[Event]]:
        rounds = []
        while events := self.pending():
            await self.feed(events)
            self.seq = events[-1].seq
            rounds.append(events)
        return rounds


async def _ready(app: FastAPI, services: Services, client: httpx.AsyncClient, hook: str) -> BatchPump:
    consumers = install(app, services)
    await enrol(client)
    assert (
        await client.post("/Subscription", json=subscription(hook, "Communication?care-manager=Practitioner/cm"))
    ).status_code == 201
    await Pump(services, consumers)()  # enrolment and handshake, one by one
    pump = BatchPump(services, consumers)
    pump.seq = pump.pending()[-1].seq  # everything so far went through the one-by-one pump
    return pump


async def test_one_batch_with_a_visit_twice_alerts_once_and_a_redelivered_batch_changes_nothing(
    app: FastAPI, services: Services, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    hook = receiver.url("batch-cm")
    pump = await _ready(app, services, client, hook)

    first = (await client.post("/Encounter", json=encounter("EMER"))).json()
    first["status"] = "in-progress"
    assert (await client.put(f"/Encounter/{first['id']}", json=first)).status_code == 200
    other = encounter("EMER", identifier=[{"system": "https://hosp.example/visit", "value": "V2"}])
    assert (await client.post("/Encounter", json=other)).status_code == 201
    rounds = await pump()
    assert len(rounds) >= 2  # the Encounters, then the alert resources they caused

    alerts = (await client.get("/Communication", params={"category": ALERTS})).json()
    assert alerts["total"] == 2  # one per visit, not one per Encounter version
    numbers = [n for n, _ in receiver.events("batch-cm")]
    assert numbers == [1, 2]

    for events in rounds:  # at-least-once: the same batches again
        await pump.feed(events)
    assert (await client.get("/Communication", params={"category": ALERTS})).json()["total"] == 2
    assert [n for n, _ in receiver.events("batch-cm")] == [1, 2]


async def test_a_visit_and_its_cancel_in_one_batch_end_retracted(
    app: FastAPI, services: Services, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    hook = receiver.url("batch-cancel")
    pump = await _ready(app, services, client, hook)

    visit = (await client.post("/Encounter", json=encounter("EMER"))).json()
    visit["status"] = "entered-in-error"
    assert (await client.put(f"/Encounter/{visit['id']}", json=visit)).status_code == 200
    await pump()

    alerts = (await client.get("/Communication", params={"category": ALERTS})).json()
    assert [e["resource"]["status"] for e in alerts["entry"]] == ["entered-in-error"]
    flags = (await client.get("/Flag", params={"patient": "Patient/hosp-1", "status": "active"})).json()
    assert flags["total"] == 0


async def test_encounters_of_people_nobody_case_manages_are_not_read_or_classified(
    app: FastAPI, services: Services, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    """The screen (three index queries and a registry lookup per batch) lets only Encounters that can
    change an alert through to the full classification, which reads and parses versions and
    Provenance: the MLLP intake's new, never case-managed people cost next to nothing there."""
    hook = receiver.url("batch-screen")
    pump = await _ready(app, services, client, hook)
    pipeline = pump.consumers["alerts"]
    classified: list[str] = []
    full = pipeline._classify_many

    def counting(events: Any, links: Any = None) -> Any:
        classified.extend(e.res_id for e in events)
        return full(events, links)

    pipeline._classify_many = counting
    stranger = {"resourceType": "Patient", "identifier": [{"system": "https://hosp.example/mrn", "value": "X9"}]}
    stranger_id = (await client.post("/Patient", json=stranger)).json()["id"]
    ignored = [
        (await client.post("/Encounter", json=encounter("EMER", patient=f"Patient/{stranger_id}"))).json()["id"],
        (await client.post("/Encounter", json={**encounter("EMER"), "subject": None})).json()["id"],
    ]
    linked = (await client.post("/Encounter", json=encounter("EMER"))).json()  # hosp-1, linked to cm-1
    direct = (await client.post("/Encounter", json=encounter("IMP", patient="Patient/cm-1"))).json()
    await pump()

    assert sorted(classified) == sorted([linked["id"], direct["id"]])
    assert not set(ignored) & set(classified)
    alerts = (await client.get("/Communication", params={"category": ALERTS})).json()
    assert alerts["total"] == 2
    assert len(receiver.events("batch-screen")) == 2


async def test_a_batchs_alerts_take_their_episodes_from_the_screens_one_registry_lookup(
    app: FastAPI, services: Services, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    """With Redis each registry lookup is a round trip: the screen's answer (every record it looked
    up, case-managed or not) serves the alerts too, and a record it did not look up is looked up
    once for the whole batch."""
    hook = receiver.url("batch-lookups")
    pump = await _ready(app, services, client, hook)
    registry = pump.consumers["alerts"].registry
    asked: list[list[str]] = []
    real = registry.lookup

    async def counting(patient_ids: Any) -> Any:
        asked.append(sorted(patient_ids))
        return await real(patient_ids)

    registry.lookup = counting
    first = (await client.post("/Encounter", json=encounter("EMER"))).json()  # hosp-1, linked to cm-1
    second = (await client.post("/Encounter", json=encounter("IMP", patient="Patient/cm-1"))).json()
    await pump()

    assert len(asked) == 1  # the screen's, for both Encounters
    alerts = (await client.get("/Communication", params={"category": ALERTS})).json()
    assert alerts["total"] == 2
    about = sorted(r["reference"] for e in alerts["entry"] for r in e["resource"]["about"])
    assert f"Encounter/{first['id']}" in about and f"Encounter/{second['id']}" in about
    assert len(receiver.events("batch-lookups")) == 2


async def test_a_cancel_moved_to_another_person_still_takes_the_alert_back(
    app: FastAPI, services: Services, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    """An alerted visit goes the full way whatever its subject now is (the screen checks for the
    visit's alert), so a cancel that also moved the Encounter to a stranger still retracts."""
    hook = receiver.url("batch-moved")
    pump = await _ready(app, services, client, hook)
    visit = (await client.post("/Encounter", json=encounter("EMER"))).json()
    await pump()
    assert (await client.get("/Flag", params={"patient": "Patient/hosp-1", "status": "active"})).json()["total"] == 1

    stranger = (await client.post("/Patient", json={"resourceType": "Patient"})).json()["id"]
    visit["status"] = "cancelled"
    visit["subject"] = {"reference": f"Patient/{stranger}"}
    assert (await client.put(f"/Encounter/{visit['id']}", json=visit)).status_code == 200
    await pump()
    alerts = (await client.get("/Communication", params={"category": ALERTS})).json()
    assert [e["resource"]["status"] for e in alerts["entry"]] == ["entered-in-error"]
    assert (await client.get("/Flag", params={"patient": "Patient/hosp-1", "status": "active"})).json()["total"] == 0


async def test_an_alert_and_its_event_numbers_commit_together(
    app: FastAPI, services: Services, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    """The presented-topic events are numbered in the alert's own transaction: when numbering fails
    the alert is not written either, and the redelivered Encounter event writes both, once."""
    hook = receiver.url("batch-atomic")
    pump = await _ready(app, services, client, hook)
    service: SubscriptionService = pump.consumers["subscriptions"]
    real = service.repo.record_events
    calls = 0

    def failing_once(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("numbering failed")
        return real(*args, **kwargs)

    service.repo.record_events = failing_once  # type: ignore[method-assign]
    assert (await client.post("/Encounter", json=encounter("EMER"))).status_code == 201
    events = pump.pending()
    with pytest.raises(RuntimeError):
        await pump.feed(events)
    assert (await client.get("/Communication", params={"category": ALERTS})).json()["total"] == 0

    await pump()  # the same Encounter event again (at-least-once), then the alert's own events
    assert (await client.get("/Communication", params={"category": ALERTS})).json()["total"] == 1
    assert [n for n, _ in receiver.events("batch-atomic")] == [1]


async def test_an_alert_numbered_by_the_process_that_wrote_it_is_not_decided_again(
    app: FastAPI, services: Services, client: httpx.AsyncClient, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With several processes the alert Communication's own event often reaches a process that did
    not write it (it cannot remember having published it): the event log says it was numbered,
    so that process reads, decides and numbers nothing, and the subscriber hears of it once."""
    hook = receiver.url("batch-elsewhere")
    pump = await _ready(app, services, client, hook)
    pipeline = pump.consumers["alerts"]
    assert (await client.post("/Encounter", json=encounter("EMER"))).status_code == 201
    rounds = await pump()
    assert [e.res_type for e in rounds[0]] == ["Encounter"]
    communication = next(e for r in rounds[1:] for e in r if e.res_type == "Communication")
    assert [n for n, _ in receiver.events("batch-elsewhere")] == [1]

    read: list[str] = []
    real = pipeline._alert_context_in
    monkeypatch.setattr(pipeline, "_alert_context_in", lambda uow, event: read.append(event.res_id) or real(uow, event))
    pipeline._published = RecentSeqs()  # as another process sees it
    pipeline._handled = RecentSeqs()
    await pump.feed([communication])
    assert read == []
    assert [n for n, _ in receiver.events("batch-elsewhere")] == [1]

    # a version nobody numbered (the alert taken back, here by a client's write) is still published
    alert = (await client.get("/Communication", params={"category": ALERTS})).json()["entry"][0]["resource"]
    alert["status"] = "entered-in-error"
    assert (await client.put(f"/Communication/{alert['id']}", json=alert)).status_code == 200
    await pump()
    assert read == [alert["id"]]
    assert [n for n, _ in receiver.events("batch-elsewhere")] == [1, 2]


def test_a_segments_communications_go_first_and_its_encounters_form_one_run() -> None:
    """Communications between Encounters no longer split the Encounters into several runs (a screen,
    a classification and a write transaction each); every Communication in a batch was committed
    before the batch was read, so numbering it first never puts a version after a newer one the
    Encounters' handling writes. Enrolments and other handled types keep their place."""

    def ev(seq: int, rtype: str) -> Event:
        return Event(seq, rtype, f"{rtype[0].lower()}{seq}", 1, "POST", datetime(2025, 3, 1))

    batch = [ev(1, "Encounter"), ev(2, "Patient"), ev(3, "Communication"), ev(4, "Encounter")]
    batch += [ev(5, "EpisodeOfCare"), ev(6, "Encounter"), ev(7, "Communication"), ev(8, "Flag")]
    runs = [(kind, [e.seq for e in run]) for kind, run in _runs(batch)]
    assert runs == [
        ("Communication", [3]),
        ("Encounter", [1, 4]),
        ("*", [5]),
        ("Communication", [7]),
        ("Encounter", [6]),
    ]


async def test_encounters_either_side_of_a_communication_are_written_in_one_transaction(
    app: FastAPI, services: Services, client: httpx.AsyncClient, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    hook = receiver.url("batch-merged")
    pump = await _ready(app, services, client, hook)
    pipeline = pump.consumers["alerts"]
    writes: list[int] = []
    real = pipeline._write_all
    monkeypatch.setattr(pipeline, "_write_all", lambda work: writes.append(len(work)) or real(work))
    first = encounter("EMER", identifier=[{"system": "urn:visit", "value": "v1"}])
    assert (await client.post("/Encounter", json=first)).status_code == 201
    note = {"resourceType": "Communication", "status": "completed", "payload": [{"contentString": "ward round"}]}
    assert (await client.post("/Communication", json=note)).status_code == 201
    second = encounter("IMP", identifier=[{"system": "urn:visit", "value": "v2"}])
    assert (await client.post("/Encounter", json=second)).status_code == 201
    batch = pump.pending()
    assert [e.res_type for e in batch] == ["Encounter", "Communication", "Encounter"]
    await pump()
    assert writes[0] == 2
    assert sorted(n for n, _ in receiver.events("batch-merged")) == [1, 2]
