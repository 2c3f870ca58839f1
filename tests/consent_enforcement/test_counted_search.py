"""A counted first page over more matches than its first fetch: the total and the pages stay exact."""

from __future__ import annotations

from collections.abc import Callable

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
