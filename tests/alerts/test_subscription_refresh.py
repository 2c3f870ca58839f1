"""Several gateway processes: each learns of Subscriptions another process handled (no restart needed)."""

from __future__ import annotations

from fastapi import FastAPI

from gateway.alerts.install import install, runtime_of
from gateway.alerts.subscriptions.backport import EXT_PAYLOAD_CONTENT
from gateway.alerts.subscriptions.records import EventFocus
from gateway.app import build_services
from gateway.codes import TOPIC_PRESENTED
from gateway.fhir.services import Services
from gateway.settings import Settings


async def test_a_second_process_picks_up_a_subscription_written_by_the_first(
    settings: Settings, services: Services
) -> None:
    other = build_services(settings)  # a second process on the same database
    try:
        install(FastAPI(), services)
        install(FastAPI(), other)
        stored = services.store.create(_subscription())
        second = runtime_of(other).service
        assert stored.id not in second.specs
        await second.refresh()
        assert second.specs[stored.id].topic == TOPIC_PRESENTED
        with services.store.writer() as uow:
            uow.delete("Subscription", stored.id)
        await second.refresh()
        assert stored.id not in second.specs
    finally:
        other.store.engine.dispose()


async def test_a_second_process_numbers_for_a_subscription_written_since_its_last_refresh(
    settings: Settings, services: Services
) -> None:
    """Only one process consumes a Subscription write; another that numbers an alert before its
    next timer round must still number it for that Subscription (it reads what changed first)."""
    other = build_services(settings)
    try:
        install(FastAPI(), services)
        install(FastAPI(), other)
        stored = services.store.create(_subscription())
        await runtime_of(services).service.deliverer.register(runtime_of(services).service.parse(stored.json()))
        second = runtime_of(other).service
        assert stored.id not in second.specs
        with other.store.writer() as uow:
            alert = uow.create({"resourceType": "Communication", "status": "completed"})
            numbered = second.number_in(
                uow, [(TOPIC_PRESENTED, EventFocus("Communication", alert.id, alert.version_id), {})]
            )
        assert [spec.id for _, spec, _ in numbered.planned] == [stored.id]
        assert numbered.numbers[0] is not None
    finally:
        other.store.engine.dispose()


def _subscription() -> dict[str, object]:
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "test",
        "criteria": TOPIC_PRESENTED,
        "channel": {
            "type": "rest-hook",
            "endpoint": "http://127.0.0.1:9/hook",
            "payload": "application/fhir+json",
            "_payload": {"extension": [{"url": EXT_PAYLOAD_CONTENT, "valueCode": "id-only"}]},
        },
    }
