"""A gateway with the real consent guard whose callers are told apart by a test header, its export
jobs started by hand (so a test can see a job before it runs), and a `bulk` helper that drives the
kick-off → poll → download cycle. Tokens are exercised for real in test_export_tokens.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from starlette.requests import Request

from gateway.app import create_app
from gateway.audit.writer import ListAuditSink
from gateway.auth.context import AccessContext, system_context
from gateway.fhir.access import ConsentGuard
from gateway.fhir.export.jobs import ExportJobs
from gateway.fhir.export.web import EXPORTS_KEY, exports_of
from gateway.fhir.services import Services
from gateway.settings import Settings

CALLERS = {
    "trust": AccessContext(
        client_id="trust-pas", organization="Organization/trust-a", role="clinician", scopes=frozenset({"system/*.rs"})
    ),
    "trust-2": AccessContext(
        client_id="trust-other",
        organization="Organization/trust-a",
        role="clinician",
        scopes=frozenset({"system/*.rs"}),
    ),
    "council": AccessContext(
        client_id="council-app",
        organization="Organization/council-b",
        role="social-worker",
        scopes=frozenset({"system/*.rs"}),
    ),
    "obs-only": AccessContext(
        client_id="obs-app",
        organization="Organization/trust-a",
        role="clinician",
        scopes=frozenset({"system/Observation.rs"}),
    ),
    "btg": AccessContext(
        client_id="ed-doctor",
        organization="Organization/trust-a",
        role="clinician",
        scopes=frozenset({"system/*.rs"}),
        purpose_of_use="BTG",
        break_glass_reason="unconscious in resus",
    ),
}
ASYNC = {"Prefer": "respond-async"}


def _authenticate(request: Request) -> AccessContext:
    who = request.headers.get("x-test-caller", "admin")
    return CALLERS.get(who) or system_context("test-admin")


@dataclass
class Bulk:
    """Drives exports the way a Bulk Data client does."""

    caller: Callable[[str], httpx.AsyncClient]
    jobs: ExportJobs
    base: str = "http://testserver/fhir"

    def local(self, url: str) -> str:
        assert url.startswith(self.base), url
        return url[len(self.base) :]

    async def kick_off(self, who: str, path: str = "/$export", **headers: str) -> httpx.Response:
        return await self.caller(who).get(path, headers={**ASYNC, **headers})

    def job_id(self, kicked: httpx.Response) -> str:
        assert kicked.status_code == 202, kicked.text
        return kicked.headers["content-location"].rsplit("=", 1)[1]

    async def finish(self, who: str, kicked: httpx.Response) -> dict[str, Any]:
        """Run the job to its end here and return the completed manifest."""
        job_id = self.job_id(kicked)
        self.jobs.start(job_id)
        self.jobs.wait(job_id, timeout=60)
        status = await self.caller(who).get(self.local(kicked.headers["content-location"]))
        assert status.status_code == 200, status.text
        manifest: dict[str, Any] = status.json()
        return manifest

    async def export(self, who: str, path: str = "/$export") -> dict[str, Any]:
        return await self.finish(who, await self.kick_off(who, path))

    async def files(self, who: str, manifest: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
        """Every output file, downloaded and parsed: type -> resources."""
        out: dict[str, list[dict[str, Any]]] = {}
        for item in manifest["output"]:
            got = await self.caller(who).get(self.local(item["url"]))
            assert got.status_code == 200 and got.headers["content-type"].startswith("application/fhir+ndjson")
            lines = [orjson.loads(line) for line in got.content.splitlines()]
            assert len(lines) == item["count"]
            assert {r["resourceType"] for r in lines} == {item["type"]}  # one type per file
            out[item["type"]] = lines
        return out


@pytest.fixture
def audit_sink() -> ListAuditSink:
    return ListAuditSink()


@pytest.fixture
def guarded_app(settings: Settings, services: Services, audit_sink: ListAuditSink) -> FastAPI:
    services.authenticate = _authenticate
    services.extras["guard"] = ConsentGuard(services.store, audit=audit_sink)
    jobs = exports_of(services)
    jobs.autostart = False
    services.extras[EXPORTS_KEY] = jobs
    return create_app(settings, services, components=False)


@pytest.fixture
async def bulk(guarded_app: FastAPI, services: Services) -> AsyncIterator[Bulk]:
    clients: dict[str, httpx.AsyncClient] = {}

    def get(who: str) -> httpx.AsyncClient:
        if who not in clients:
            clients[who] = httpx.AsyncClient(
                transport=httpx.ASGITransport(app=guarded_app),
                base_url="http://testserver/fhir",
                headers={"x-test-caller": who},
            )
        return clients[who]

    yield Bulk(get, exports_of(services))
    for c in clients.values():
        await c.aclose()
