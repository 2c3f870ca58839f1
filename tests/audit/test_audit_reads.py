"""Reading the audit trail sees every access audited before the read began.

The writer stores AuditEvents in batches, in the gaps between requests (up to a second or two
after the access): a read or search of AuditEvent has the writer store what it holds first, so an
auditor asking "who looked at this record?" right after a look is told about it.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from gateway.consent.agreements import build_agreement
from tests.conftest import Database, secured_gateway

SECRET = "secret-auditor-0123456789"


async def test_the_audit_trail_read_right_after_an_access_shows_it(tmp_path: Path, database: Database) -> None:
    _, services, app = secured_gateway(tmp_path, database.url, SECRET)
    with services.store.writer() as uow:
        uow.update(build_agreement(id="isa-audit", recipients=["Organization/case-mgmt"], purposes=["TREAT"]))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as http:
            issued = await http.post(
                "/auth/token", data={"grant_type": "client_credentials"}, auth=("case-app", SECRET)
            )
            bearer = {"Authorization": f"Bearer {issued.json()['access_token']}"}
            for _ in range(3):
                assert (await http.get("/fhir/Patient/p1", headers=bearer)).status_code == 200
            reads = await http.get("/fhir/AuditEvent", params={"patient": "Patient/p1", "action": "R"}, headers=bearer)
            assert reads.status_code == 200 and reads.json()["total"] == 3
            one = reads.json()["entry"][0]["resource"]["id"]
            assert (await http.get(f"/fhir/AuditEvent/{one}", headers=bearer)).status_code == 200
            assert (await http.get("/fhir/Patient/p1", headers=bearer)).status_code == 200
            history = await http.get("/fhir/AuditEvent/_history", headers=bearer)
            assert history.status_code == 200
            read_events = [e for e in history.json().get("entry", []) if (e.get("resource") or {}).get("action") == "R"]
            assert len(read_events) >= 4  # the three reads, the fourth, and the AuditEvent read itself
    finally:
        assert services.extras["guard"].audit.close() == []  # the last reads' events, stored before the end
        services.store.engine.dispose()
