"""Disabling a client refuses its still-valid token on the very next request, on every back end.

The FHIR interactions check the client inside their own first transaction (one statement there,
not a connection of its own before it): every one of them must still refuse, before anything is
read, written or audited."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from gateway.app import build_services, create_app
from gateway.auth import ClientRepository
from gateway.store.schema import resource
from tests.conftest import Database, make_settings

SECRET = "secret-case-app-0123456789"
ENC = {"resourceType": "Encounter", "status": "planned", "class": {"code": "AMB"}}

# (method, path, body): every interaction a client might try next, reads and writes
REQUESTS = [
    ("GET", "/fhir/Patient", None),
    ("GET", "/fhir/Observation?patient=p1", None),
    ("GET", "/fhir/Patient/p1", None),
    ("GET", "/fhir/Patient/p1/_history/1", None),
    ("GET", "/fhir/Patient/p1/_history", None),
    ("GET", "/fhir/Patient/_history", None),
    ("GET", "/fhir/_history", None),
    ("GET", "/fhir/Patient/p1/$everything", None),
    ("POST", "/fhir/Encounter", ENC),
    ("PUT", "/fhir/Encounter/e-new", {**ENC, "id": "e-new"}),
    ("DELETE", "/fhir/Patient/p1", None),
    ("POST", "/fhir/Patient/$match", {"resourceType": "Parameters", "parameter": []}),
]


async def test_a_disabled_client_is_refused_on_the_next_request(tmp_path: Path, database: Database) -> None:
    settings = make_settings(tmp_path, database.url, auth_required=True)
    services = build_services(settings)
    ClientRepository(services.store.engine).add(
        client_id="case-app",
        name="case-app",
        organization="Organization/case-mgmt",
        role="case-manager",
        scopes=["system/*.cruds"],
        secret=SECRET,
    )
    with services.store.writer() as uow:
        uow.update({"resourceType": "Patient", "id": "p1", "name": [{"family": "Ashdown"}]})
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
            assert (await http.get("/fhir/Patient/p1", headers=bearer)).status_code == 404  # no agreement
            assert services.extras["guard"].audit.flush()  # what was audited so far is written
            stored_before = _count(services)
            assert ClientRepository(other_process).disable("case-app")
            for method, path, body in REQUESTS:
                refused = await http.request(method, path, headers=bearer, json=body)
                assert refused.status_code == 401, (method, path, refused.text)
                assert refused.headers["www-authenticate"] == "Bearer"
                assert refused.json()["issue"][0]["diagnostics"] == "the access token is not valid"
            assert _count(services) == stored_before  # nothing written, nothing audited
    finally:
        other_process.dispose()
        services.store.engine.dispose()


def _count(services: object) -> int:
    engine = services.store.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(resource)).scalar_one())


@pytest.mark.parametrize("in_transaction", [True, False])
def test_the_in_transaction_check_is_the_first_statement(tmp_path: Path, in_transaction: bool) -> None:
    """The check runs on the request's own connection, before its first read (or on one of its own)."""
    from sqlalchemy import event
    from starlette.requests import Request

    from gateway.fhir.interactions.common import repository

    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'g.db'}", auth_required=True)
    services = build_services(settings)
    client = ClientRepository(services.store.engine).add(
        client_id="c", name="c", organization="Organization/o", role="r", scopes=["system/*.rs"], secret=SECRET
    )
    seen: list[str] = []
    event.listen(services.store.engine, "before_cursor_execute", lambda *a: seen.append(" ".join(a[2].split())))
    services.authenticate = lambda request: _ctx(client.client_id)
    services.authenticate_token = lambda request: _ctx(client.client_id)
    app = create_app(settings, services, components=False)
    request = Request({"type": "http", "app": app, "headers": [], "method": "GET", "path": "/", "query_string": b""})
    repo = repository(request, client_in_transaction=in_transaction)
    assert not seen  # nothing asked before the transaction
    with repo.reader() as uow:
        uow.get("Patient", "p1")
        uow.get("Patient", "p2")
    statements = [s for s in seen if not s.startswith(("BEGIN", "ROLLBACK", "COMMIT"))]
    if in_transaction:
        assert statements[0].startswith("SELECT auth_client.disabled")
        assert sum(s.startswith("SELECT auth_client.disabled") for s in statements) == 1
    else:
        assert not any(s.startswith("SELECT auth_client") for s in statements)  # `authenticate` did it
    services.store.engine.dispose()


def _ctx(client_id: str) -> object:
    from gateway.auth.context import AccessContext

    return AccessContext(client_id=client_id, organization="Organization/o", scopes=frozenset({"system/*.rs"}))
