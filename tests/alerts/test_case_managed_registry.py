"""Case-managed registry (issue 5, item 1): entries follow EpisodeOfCare status, in memory and in Redis."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from redis.asyncio import Redis

from gateway.alerts.registry import (
    EXT_CARE_PLAN,
    EXT_VIRTUAL_WARD,
    CaseManagedEntry,
    CaseManagedRegistry,
    InMemoryRegistry,
    RedisRegistry,
    case_managed_entry,
)
from gateway.codes import EPISODE_TYPE_SYSTEM, SOCIAL_CARE_PACKAGE, VIRTUAL_WARD

REDIS_URL = "redis://127.0.0.1:6379/0"


def episode(
    eid: str = "ep1",
    patient: str = "p1",
    *,
    status: str = "active",
    ward: str | None = "ward-north",
    type_code: str = VIRTUAL_WARD,
    team: bool = True,
    manager: bool = True,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "EpisodeOfCare",
        "id": eid,
        "status": status,
        "type": [{"coding": [{"system": EPISODE_TYPE_SYSTEM, "code": type_code}], "text": "Virtual ward"}],
        "patient": {"reference": f"Patient/{patient}"},
        "managingOrganization": {"reference": "Organization/community-trust"},
        "period": {"start": "2026-01-05"},
        "extension": [{"url": EXT_CARE_PLAN, "valueReference": {"reference": "CarePlan/cp1"}}],
    }
    if ward:
        resource["extension"].append(
            {"url": EXT_VIRTUAL_WARD, "valueReference": {"reference": f"Location/{ward}", "display": ward.title()}}
        )
    if manager:
        resource["careManager"] = {"reference": "Practitioner/cm1", "display": "Case Manager One"}
    if team:
        resource["team"] = [{"reference": "https://gw.example/fhir/CareTeam/team1"}]
    get_fhir_model_class("EpisodeOfCare").model_validate(resource)
    return resource


def test_active_virtual_ward_episode_gives_entry() -> None:
    entry = case_managed_entry(episode())
    assert entry == CaseManagedEntry(
        patient_id="p1",
        episode_id="ep1",
        episode_type=VIRTUAL_WARD,
        ward_id="ward-north",
        ward_name="Ward-North",
        care_manager="Practitioner/cm1",
        care_manager_display="Case Manager One",
        teams=("CareTeam/team1",),
        care_plan="CarePlan/cp1",
        managing_organization="Organization/community-trust",
        since="2026-01-05",
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"status": "finished"},
        {"status": "planned"},
        {"type_code": SOCIAL_CARE_PACKAGE},
        {"team": False},
        {"manager": False},
    ],
)
def test_not_case_managed(kwargs: dict[str, Any]) -> None:
    assert case_managed_entry(episode(**kwargs)) is None


def test_ward_falls_back_to_organisation_and_programme() -> None:
    entry = case_managed_entry(episode(ward=None))
    assert entry is not None
    assert (entry.ward_id, entry.ward_name) == ("community-trust.virtual-ward", "Virtual ward")


def test_entry_json_round_trip() -> None:
    entry = case_managed_entry(episode())
    assert entry is not None
    assert CaseManagedEntry.from_json(entry.to_json()) == entry


async def _lifecycle(registry: CaseManagedRegistry) -> None:
    assert await registry.apply_episode(episode("ep1", "p1")) is not None
    await registry.apply_episode(episode("ep2", "p2"))
    assert [e.episode_id for e in await registry.lookup(["p1", "p2", "nobody"])] == ["ep1", "ep2"]
    assert [e.patient_id for e in await registry.ward("ward-north")] == ["p1", "p2"]

    # moved to another ward: gone from the old ward, on the new one, still found by patient
    await registry.apply_episode(episode("ep1", "p1", ward="ward-south"))
    assert [e.patient_id for e in await registry.ward("ward-north")] == ["p2"]
    assert [e.ward_id for e in await registry.lookup(["p1"])] == ["ward-south"]

    # closed: removed everywhere
    assert await registry.apply_episode(episode("ep1", "p1", status="finished", ward="ward-south")) is None
    assert await registry.lookup(["p1"]) == []
    assert await registry.ward("ward-south") == []

    # re-enrolled, then the episode deleted
    await registry.apply_episode(episode("ep1", "p1"))
    assert len(await registry.lookup(["p1"])) == 1
    await registry.remove_episode("ep2")
    assert await registry.lookup(["p2"]) == []
    assert [e.patient_id for e in await registry.ward("ward-north")] == ["p1"]


def test_in_memory_registry_follows_episode_status() -> None:
    asyncio.run(_lifecycle(InMemoryRegistry()))


@pytest.mark.redis
def test_redis_registry_follows_episode_status() -> None:
    async def run() -> None:
        client = Redis.from_url(REDIS_URL)
        prefix = f"test:cm:{uuid.uuid4().hex}:"
        try:
            assert await client.ping()
            await _lifecycle(RedisRegistry(client, prefix=prefix))
            keys = sorted([k.decode() async for k in client.scan_iter(match=f"{prefix}*")])
            assert keys == [f"{prefix}episode:ep1", f"{prefix}patient:p1", f"{prefix}ward:ward-north"]
        finally:
            async for key in client.scan_iter(match=f"{prefix}*"):
                await client.delete(key)
            await client.aclose()

    asyncio.run(run())


@pytest.mark.redis
def test_redis_and_memory_agree_on_lookup() -> None:
    async def run() -> None:
        client = Redis.from_url(REDIS_URL)
        prefix = f"test:cm:{uuid.uuid4().hex}:"
        memory, shared = InMemoryRegistry(), RedisRegistry(client, prefix=prefix)
        try:
            for i in range(5):
                for registry in (memory, shared):
                    await registry.apply_episode(episode(f"ep{i}", f"p{i % 3}", ward=f"w{i % 2}"))
            ids = ["p0", "p1", "p2"]
            assert await shared.lookup(ids) == await memory.lookup(ids)
            assert await shared.ward("w0") == await memory.ward("w0")
        finally:
            async for key in client.scan_iter(match=f"{prefix}*"):
                await client.delete(key)
            await client.aclose()

    asyncio.run(run())
