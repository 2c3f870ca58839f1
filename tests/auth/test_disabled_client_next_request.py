"""Disabling a client refuses its still-valid token on the very next request, on every back end."""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy import create_engine

from gateway.app import build_services, create_app
from gateway.auth import ClientRepository
from tests.conftest import Database, make_settings

SECRET = "secret-case-app-0123456789"


async def test_a_disabled_client_is_refused_on_the_next_request(tmp_path: Path, database: Database) -> None:
    settings = make_settings(tmp_path, database.url, auth_required=True)
    services = build_services(settings)
    ClientRepository(services.store.engine).add(
        client_id="case-app",
        name="case-app",
        organization="Organization/case-mgmt",
        role="case-manager",
        scopes=["system/*.rs"],
        secret=SECRET,
    )
    app = create_app(settings, services)
    other_process = create_engine(database.url)  # the disabling commits elsewhere (the CLI, another node)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
            issued = await http.post(
                "/auth/token", data={"grant_type": "client_credentials"}, auth=("case-app", SECRET)
            )
            assert issued.status_code == 200
            bearer = {"Authorization": f"Bearer {issued.json()['access_token']}"}
            for _ in range(3):  # answered from the token cache, decisions cached
                assert (await http.get("/fhir/Patient", headers=bearer)).status_code == 200
            assert ClientRepository(other_process).disable("case-app")
            refused = await http.get("/fhir/Patient", headers=bearer)
            assert refused.status_code == 401
            assert (await http.get("/fhir/Observation?patient=p1", headers=bearer)).status_code == 401
    finally:
        other_process.dispose()
        services.store.engine.dispose()
