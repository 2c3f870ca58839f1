"""Disabling a client refuses its still-valid token on the very next request, on every back end.

The FHIR interactions check the client inside their own first transaction (with the policy inputs,
or a statement of its own; not on a connection of its own): each must still refuse, before anything is
read, written or audited."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, event, func, select

from gateway.app import build_services, create_app
from gateway.auth import ClientRepository
from gateway.fhir.errors import FhirError
from gateway.store.schema import resource
from tests.conftest import Database, make_settings, secured_gateway

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
    _, services, app = secured_gateway(tmp_path, database.url, SECRET)
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
            assert services.extras["guard"].audit.flush()
            assert _count(services) == stored_before  # nothing written, nothing audited
    finally:
        other_process.dispose()
        services.store.engine.dispose()


def _count(services: object) -> int:
    engine = services.store.engine  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(resource)).scalar_one())


def _statements(tmp_path: Path) -> tuple[Any, list[str]]:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'g.db'}", auth_required=True)
    services = build_services(settings)
    ClientRepository(services.store.engine).add(
        client_id="c", name="c", organization="Organization/o", role="r", scopes=["system/*.rs"], secret=SECRET
    )
    with services.store.writer() as uow:
        uow.update({"resourceType": "Patient", "id": "p1", "name": [{"family": "Ashdown"}]})
    seen: list[str] = []
    event.listen(services.store.engine, "before_cursor_execute", lambda *a: seen.append(" ".join(a[2].split())))
    # SQLite's BEGIN goes to the driver without a cursor event: each transaction's start is marked here.
    event.listen(services.store.engine, "begin", lambda *a: seen.append("BEGIN"))
    services.authenticate = lambda request: _ctx("c")
    services.authenticate_token = lambda request: _ctx("c")
    return services, seen


def _repository(services: Any, in_transaction: bool) -> Any:
    from starlette.requests import Request

    from gateway.fhir.interactions.common import repository

    app = create_app(services.settings, services, components=False)
    scope = {"type": "http", "app": app, "headers": [], "method": "GET", "path": "/", "query_string": b""}
    return repository(Request(scope), client_in_transaction=in_transaction)


@pytest.mark.parametrize("in_transaction", [True, False])
def test_a_read_with_no_decision_asks_once_before_it_answers(tmp_path: Path, in_transaction: bool) -> None:
    """No consent decision in the transaction: the check is a statement of its own in it, once."""
    services, seen = _statements(tmp_path)
    repo = _repository(services, in_transaction)
    assert not seen  # nothing asked before the transaction
    with repo.reader() as uow:
        uow.get("Patient", "p1")
    with repo.reader() as uow:
        uow.get("Patient", "p2")
    checks = [s for s in seen if "auth_client" in s]
    if in_transaction:
        assert len(checks) == 1 and checks[0].startswith("SELECT auth_client.disabled")
        begins = [i for i, s in enumerate(seen) if s == "BEGIN"]
        assert begins[0] < seen.index(checks[0]) < begins[1]  # in the first transaction, at its end
    else:
        assert not checks  # `authenticate` made it, on a connection of its own
    services.store.engine.dispose()


def test_a_decided_read_asks_in_the_policy_inputs_statement(tmp_path: Path) -> None:
    """With a consent decision to make, the check rides in the policy-inputs statement: no extra one."""
    from gateway.fhir.access import ConsentGuard

    services, seen = _statements(tmp_path)
    services.extras["guard"] = ConsentGuard(services.store)
    repo = _repository(services, True)
    with repo.reader() as uow:
        repo.visible(uow, [uow.read("Patient", "p1")])
    checks = [s for s in seen if "auth_client" in s]
    assert len(checks) == 1 and "UNION ALL" in checks[0]  # folded into the inputs
    ClientRepository(services.store.engine).disable("c")
    repo = _repository(services, True)
    with pytest.raises(FhirError) as refused, repo.reader() as uow:
        repo.visible(uow, [uow.read("Patient", "p1")])
    assert refused.value.status == 401
    services.store.engine.dispose()


def _ctx(client_id: str) -> object:
    from gateway.auth.context import AccessContext

    return AccessContext(client_id=client_id, organization="Organization/o", scopes=frozenset({"system/*.rs"}))
