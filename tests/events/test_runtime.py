"""`install` wires the relay (and Redis workers) into the app lifespan hooks and stops them cleanly."""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.asyncio import Redis

from gateway.app import build_services
from gateway.events import InProcessBus, RedisStreamBus, install, pending_count
from gateway.fhir.services import Services
from tests.conftest import make_settings
from tests.events.support import REDIS_URL, Recorder, write_patients


async def _run_hooks(services: Services, name: str) -> None:
    for hook in services.extras.get(name, []):
        await hook()


async def test_install_in_process_delivers_between_startup_and_shutdown(services: Services) -> None:
    consumer = Recorder()
    runtime = install(services, {"alerts": consumer}, relay_options={"poll_interval": 0.05})
    assert isinstance(runtime.bus, InProcessBus) and services.extras["events"] is runtime
    write_patients(services.store, 2)  # written before start: still delivered
    await _run_hooks(services, "startup")
    try:
        await asyncio.to_thread(write_patients, services.store, 1)
        await consumer.wait_for(3)
    finally:
        await _run_hooks(services, "shutdown")
    assert not runtime.running
    assert len(set(consumer.seqs)) == 3
    assert pending_count(services.store) == 0


async def test_install_with_redis_runs_relay_and_workers(tmp_path: Path, redis: Redis, stream: str) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'gw.db'}", redis_url=REDIS_URL)
    services = build_services(settings)
    consumer = Recorder()
    runtime = install(
        services,
        {"alerts": consumer},
        bus_options={"stream": stream, "block_ms": 50},
        relay_options={"poll_interval": 0.05},
    )
    assert isinstance(runtime.bus, RedisStreamBus)
    await _run_hooks(services, "startup")
    try:
        ids = await asyncio.to_thread(write_patients, services.store, 3)
        await consumer.wait_for(3)
    finally:
        await _run_hooks(services, "shutdown")
        services.store.engine.dispose()
    assert [e.res_id for e in consumer.events] == ids
    assert await redis.xlen(stream) == 3
