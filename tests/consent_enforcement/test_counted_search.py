"""A counted first page over more matches than its first fetch: the total and the pages stay exact."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from gateway.fhir.search.guarded import FIRST_FETCH
from gateway.fhir.services import Services

from .test_leaks import seed

Caller = Callable[[str], httpx.AsyncClient]


async def test_total_and_pages_count_only_visible_beyond_the_first_fetch(as_caller: Caller, services: Services) -> None:
    ids = await seed(as_caller("admin"))
    visible, hidden = FIRST_FETCH + 37, FIRST_FETCH // 2
    with services.store.writer() as uow:
        for i in range(visible + hidden):
            patient = ids["hidden"] if i % 3 == 1 and i // 3 < hidden else ids["open"]
            enc = {
                "resourceType": "Encounter",
                "id": f"bulk-{i:04d}",
                "status": "finished",
                "class": {"code": "AMB"},
                "subject": {"reference": f"Patient/{patient}"},
            }
            uow.create(enc, rid=enc["id"])
    trust = as_caller("trust")
    seen: list[str] = []
    url: str | None = "/Encounter?class=AMB&_count=100&_total=accurate"
    while url:
        page = (await trust.get(url)).json()
        if not seen:
            assert page["total"] == visible  # the first page counts every visible match, none hidden
        seen += [e["resource"]["id"] for e in page.get("entry", [])]
        url = next((lk["url"] for lk in page["link"] if lk["relation"] == "next"), None)
        url = url.replace("http://testserver/fhir", "") if url else None
    assert len(seen) == len(set(seen)) == visible
    with services.store.reader() as uow:
        subjects = {uow.read("Encounter", rid).json()["subject"]["reference"] for rid in seen}
    assert subjects == {f"Patient/{ids['open']}"}


async def _bulk(services: Services, ids: dict[str, str], pattern: list[str]) -> list[str]:
    """Encounters in id order, each for the patient the pattern names ("open" or "hidden")."""
    made = []
    with services.store.writer() as uow:
        for i, who in enumerate(pattern):
            enc = {
                "resourceType": "Encounter",
                "id": f"bulk-{i:04d}",
                "status": "finished",
                "class": {"code": "AMB"},
                "subject": {"reference": f"Patient/{ids[who]}"},
            }
            made.append(uow.create(enc, rid=enc["id"]).id)
    return made


async def test_a_page_behind_hidden_matches_is_filled_from_later_ones(
    as_caller: Caller, services: Services, audit_sink: Any
) -> None:
    """Only the first page's worth of matches comes with content: when some of them are hidden,
    the page is completed from later matches, read by version, in order, and audited once."""
    ids = await seed(as_caller("admin"))
    pattern = ["hidden"] * 30 + ["open", "hidden"] * 20 + ["open"] * 40
    made = await _bulk(services, ids, pattern)
    expected = [rid for rid, who in zip(made, pattern, strict=True) if who == "open"]
    audit_sink.events.clear()
    page = (await as_caller("trust").get("/Encounter?class=AMB&_count=25&_sort=_id")).json()
    assert page["total"] == len(expected) == 60
    assert [e["resource"]["id"] for e in page["entry"]] == expected[:25]
    searches = [e for e in audit_sink.events if e["action"] == "E"]
    assert len(searches) == 1  # the page, not the count
    named = {ent["what"]["reference"] for ent in searches[0]["entity"] if "what" in ent and "reference" in ent["what"]}
    assert f"Patient/{ids['hidden']}" not in named
    nxt = next(lk["url"] for lk in page["link"] if lk["relation"] == "next").replace("http://testserver/fhir", "")
    second = (await as_caller("trust").get(nxt)).json()
    assert second["total"] == 60  # counted again for a later page: still only what the caller may see
    assert [e["resource"]["id"] for e in second["entry"]] == expected[25:50]


async def test_the_page_reuses_the_decisions_of_its_count(as_caller: Caller, services: Services) -> None:
    """Counting decides every match; the page that follows in the same transaction asks nothing again."""
    ids = await seed(as_caller("admin"))
    await _bulk(services, ids, ["open", "hidden"] * 60)
    guard = services.extras["guard"]
    lookups: list[int] = []
    original = guard.decisions.get_many

    def counting(keys: Any, now: Any, **options: Any) -> Any:
        keys = list(keys)
        lookups.append(len(keys))
        return original(keys, now, **options)

    guard.decisions.get_many = counting
    page = (await as_caller("trust").get("/Encounter?class=AMB&_count=50")).json()
    assert page["total"] == 60 and len(page["entry"]) == 50
    assert len(lookups) == 1  # one look-up (two classes) for the count, none for the page


def test_versions_are_read_exactly(services: Services) -> None:
    from gateway.fhir.search.versions import load_versions

    with services.store.writer() as uow:
        uow.update({"resourceType": "Organization", "id": "o1", "name": "one"})
    with services.store.writer() as uow:
        uow.update({"resourceType": "Organization", "id": "o1", "name": "two"})
        uow.update({"resourceType": "Organization", "id": "o2", "name": "gone"})
    with services.store.writer() as uow:
        uow.delete("Organization", "o2")
    with services.store.reader() as uow:
        got = load_versions(
            uow,
            [
                ("Organization", "o1", 2),
                ("Organization", "o1", 1),
                ("Organization", "o1", 3),
                ("Organization", "o2", 2),
            ],
        )
    assert [g.json()["name"] if g else None for g in got] == ["two", "one", None, None]
    assert [g.version_id if g else None for g in got] == [2, 1, None, None]
