"""History for a restricted caller: `total` counts, and pages show, only the versions it may see
(at type, system and instance level), so a history is no way round the consent filter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from gateway.fhir.search import history as guarded_history_module
from gateway.fhir.services import Services

from .test_leaks import seed

Caller = Callable[[str], httpx.AsyncClient]


async def _all_pages(client: httpx.AsyncClient, url: str) -> tuple[list[dict[str, Any]], list[int | None]]:
    entries: list[dict[str, Any]] = []
    totals: list[int | None] = []
    next_url: str | None = url
    while next_url:
        page = (await client.get(next_url)).json()
        assert page["type"] == "history"
        totals.append(page.get("total"))
        entries += page.get("entry", [])
        next_url = next((lk["url"] for lk in page["link"] if lk["relation"] == "next"), None)
        next_url = next_url.replace("http://testserver/fhir", "") if next_url else None
    return entries, totals


def _versions(entries: list[dict[str, Any]]) -> list[str]:
    return [e["fullUrl"].split("/fhir/")[1] + "/_history/" + e["response"]["etag"][3:-1] for e in entries]


async def _visible_to(client: httpx.AsyncClient, versions: list[str]) -> list[str]:
    return [v for v in versions if (await client.get(f"/{v}")).status_code == 200]


async def _make_versions(as_caller: Caller) -> dict[str, str]:
    admin = as_caller("admin")
    ids = await seed(admin)
    for key in ("open", "hidden", "labelled"):
        enc = (await admin.get(f"/Encounter/{ids['enc-' + key]}")).json()
        for status in ("in-progress", "finished", "cancelled"):
            assert (await admin.put(f"/Encounter/{enc['id']}", json={**enc, "status": status})).status_code == 200
    return ids


@pytest.mark.parametrize("url", ["/Encounter/_history?_count=2", "/_history?_count=3"])
async def test_history_counts_and_pages_only_visible_versions(as_caller: Caller, url: str) -> None:
    await _make_versions(as_caller)
    everything, _ = await _all_pages(as_caller("admin"), url)
    trust = as_caller("trust")
    expected = await _visible_to(trust, _versions(everything))
    assert 0 < len(expected) < len(everything)  # some versions are hidden from the trust
    entries, totals = await _all_pages(trust, url)
    assert _versions(entries) == expected  # newest first, none hidden, none twice
    assert set(totals) == {len(expected)}  # every page: the caller's total, never the store's


async def test_instance_history(as_caller: Caller) -> None:
    ids = await _make_versions(as_caller)
    trust = as_caller("trust")
    mine = (await trust.get(f"/Encounter/{ids['enc-open']}/_history?_count=2")).json()
    assert mine["total"] == 4 and len(mine["entry"]) == 2
    hidden = await trust.get(f"/Encounter/{ids['enc-hidden']}/_history")
    missing = await trust.get("/Encounter/no-such-id/_history")
    assert hidden.status_code == missing.status_code == 404


async def test_above_the_limit_the_total_is_left_out(
    as_caller: Caller, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _make_versions(as_caller)
    monkeypatch.setattr(guarded_history_module, "TOTAL_LIMIT", 3)
    monkeypatch.setattr(guarded_history_module, "_BATCH", 2)
    everything, _ = await _all_pages(as_caller("admin"), "/Encounter/_history?_count=2")
    trust = as_caller("trust")
    expected = await _visible_to(trust, _versions(everything))
    entries, totals = await _all_pages(trust, "/Encounter/_history?_count=2")
    assert _versions(entries) == expected
    assert set(totals) == {None}
