"""HL7 v2 intake against a real SQLite store, through the real MLLP socket and the HTTP route."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import hl7
import httpx
import pytest
from sqlalchemy import select

from gateway.app import build_services, create_app
from gateway.fhir.errors import FhirError
from gateway.fhir.services import Services
from gateway.intake.hl7v2_intake import Hl7Intake
from gateway.intake.mllp import MllpConnection, start_mllp_server
from gateway.intake.receipts import list_quarantine
from gateway.intake.sources import SourceRegistry
from gateway.intake.web import EXTRA_KEY, install, mllp_handler
from gateway.settings import Settings
from gateway.store.schema import intake_quarantine, intake_receipt

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hl7v2"
NOW = datetime(2026, 7, 14, 12, 0, tzinfo=UTC)
EPIC_A04 = (FIXTURES / "adt_a04_epic_v24_enhanced.hl7").read_bytes()


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    settings = Settings(data_dir=tmp_path, mllp_port=0, base_url="https://gw.example.org", log_json=False)
    built = build_services(settings)
    yield built
    built.store.engine.dispose()


@pytest.fixture
def intake(services: Services) -> Hl7Intake:
    sources = SourceRegistry.load(base_url=services.settings.base_url)
    return Hl7Intake(services.store, sources, now=lambda: NOW)


def fixture(name: str) -> bytes:
    return (FIXTURES / f"{name}.hl7").read_bytes()


def msa(ack: bytes) -> tuple[str, str]:
    parsed = hl7.parse(ack.decode("latin-1"))
    return str(parsed["MSA.F1"]), str(parsed["MSA.F2"])


def send_over_mllp(intake: Hl7Intake, messages: list[bytes]) -> list[bytes]:
    async def run() -> list[bytes]:
        server = await start_mllp_server("127.0.0.1", 0, mllp_handler(intake))
        port = server.sockets[0].getsockname()[1]
        try:
            async with MllpConnection("127.0.0.1", port, timeout=10) as conn:
                return [await conn.send(m) for m in messages]
        finally:
            server.close()
            await server.wait_closed()

    return asyncio.run(run())


def resources(services: Services, rtype: str) -> list[dict[str, object]]:
    with services.store.reader() as uow:
        rows, _ = uow.history(rtype, count=1000)
        ids = {r.id for r in rows}
        return [s.json() for s in uow.fetch_many((rtype, i) for i in sorted(ids))]


def version_count(services: Services) -> int:
    with services.store.reader() as uow:
        return uow.history(count=1)[1]


def test_epic_a04_over_mllp_is_committed_then_acked_ca_and_a_resend_changes_nothing(
    services: Services, intake: Hl7Intake
) -> None:
    first, again = send_over_mllp(intake, [EPIC_A04, EPIC_A04])
    assert msa(first) == ("CA", "EPC20260714093512001")
    assert again == first
    [patient] = resources(services, "Patient")
    [encounter] = resources(services, "Encounter")
    [provenance] = resources(services, "Provenance")
    systems = {i["system"]: i["value"] for i in patient["identifier"]}  # type: ignore[attr-defined]
    assert systems["https://fhir.nhs.uk/Id/nhs-number"] == "9990000018"
    assert systems["https://gw.example.org/source/northtown-trust/patient-id"] == "E1000001"
    assert encounter["subject"]["reference"] == f"Patient/{patient['id']}"  # type: ignore[index]
    targets = {t["reference"] for t in provenance["target"]}  # type: ignore[attr-defined]
    assert targets == {f"Patient/{patient['id']}/_history/1", f"Encounter/{encounter['id']}/_history/1"}
    assert version_count(services) == 3
    with services.store.reader() as uow:
        outcomes = [r.outcome for r in uow.conn.execute(select(intake_receipt))]
    assert outcomes == ["accepted"]


def test_another_visit_for_the_same_hospital_number_reuses_the_patient(services: Services, intake: Hl7Intake) -> None:
    second_visit = EPIC_A04.replace(b"V20260714001", b"V20260714002").replace(b"EPC20260714093512001", b"EPC2")
    acks = send_over_mllp(intake, [EPIC_A04, second_visit])
    assert [msa(a)[0] for a in acks] == ["CA", "CA"]
    [patient] = resources(services, "Patient")
    encounters = resources(services, "Encounter")
    assert len(encounters) == 2
    assert {e["subject"]["reference"] for e in encounters} == {f"Patient/{patient['id']}"}  # type: ignore[index]


def test_a11_sets_the_admission_entered_in_error(services: Services, intake: Hl7Intake) -> None:
    acks = send_over_mllp(intake, [fixture("adt_a01_v23_zsegments"), fixture("adt_a11_cancel_admit")])
    assert [msa(a)[0] for a in acks] == ["AA", "AA"]
    [encounter] = resources(services, "Encounter")
    assert encounter["status"] == "entered-in-error"
    assert encounter["meta"]["versionId"] == "2"  # type: ignore[index]
    assert len(resources(services, "Patient")) == 1


def a28(hospital_number: str, nhs_number: str, control_id: str) -> bytes:
    return (
        f"MSH|^~\\&|PAS|Z9X|CAREGW|VWARD|20260301110000||ADT^A28^ADT_A05|{control_id}|P|2.4\r"
        "EVN|A28|20260301110000\r"
        f"PID|1||{hospital_number}^^^Z9X^MR{nhs_number}||SINGH^Harpreet^^^Mr^^L||19710830|M\r"
        "PV1|1|N\r"
    ).encode()


def test_a40_links_the_two_patients_and_keeps_both(services: Services, intake: Hl7Intake) -> None:
    acks = send_over_mllp(
        intake,
        [
            a28("K5000099", "", "PAS-OLD"),
            a28("K5000005", "~9990000042^^^NHS^NH", "PAS-NEW"),
            fixture("adt_a40_merge"),
        ],
    )
    assert [msa(a)[0] for a in acks] == ["AA", "AA", "AA"]
    patients = {p["id"]: p for p in resources(services, "Patient")}
    assert len(patients) == 2
    [old] = [p for p in patients.values() if p.get("active") is False]
    [survivor] = [p for p in patients.values() if p is not old]
    assert old["link"] == [{"other": {"reference": f"Patient/{survivor['id']}"}, "type": "replaced-by"}]
    # Same demographics under a second number of the same trust: linked provisionally (seealso +
    # review Task) on arrival, then the A40 makes the merge explicit.
    assert survivor["link"] == [
        {"other": {"reference": f"Patient/{old['id']}"}, "type": "seealso"},
        {"other": {"reference": f"Patient/{old['id']}"}, "type": "replaces"},
    ]
    values = {i["value"] for i in survivor["identifier"]}  # type: ignore[attr-defined]
    assert {"K5000005", "K5000099", "9990000042"} <= values


def test_garbage_and_unknown_events_are_quarantined_with_their_reason(services: Services, intake: Hl7Intake) -> None:
    unknown = EPIC_A04.replace(b"ADT^A04^ADT_A01", b"ADT^Z99^ADT_A01").replace(b"EVN|A04", b"EVN|Z99")
    before = version_count(services)
    garbage_ack, unknown_ack, garbage_again = send_over_mllp(intake, [b"this is not HL7", unknown, b"this is not HL7"])
    assert msa(garbage_ack) == ("AR", "")
    assert msa(unknown_ack)[0] in ("CR", "CE")
    assert msa(unknown_ack)[1] == "EPC20260714093512001"
    assert garbage_again == garbage_ack
    assert version_count(services) == before
    with services.store.reader() as uow:
        rows = list(uow.conn.execute(select(intake_quarantine).order_by(intake_quarantine.c.id)))
        receipts = list(uow.conn.execute(select(intake_receipt).order_by(intake_receipt.c.id)))
    assert [bytes(r.raw) for r in rows] == [b"this is not HL7", unknown]
    assert all(r.reason and r.status == "open" for r in rows)
    assert "MSH" in rows[0].reason
    assert [r.quarantine_id for r in receipts] == [r.id for r in rows]


def test_failed_commit_raises_so_no_ack_is_sent(services: Services, intake: Hl7Intake) -> None:
    services.store.engine.dispose()
    with services.store.writer() as uow:
        uow.conn.exec_driver_sql("DROP TABLE intake_receipt")
    with pytest.raises(Exception):  # noqa: B017 - any database error must escape, not become an ACK
        intake.handle(EPIC_A04)
    assert resources(services, "Patient") == []


async def test_http_route_answers_with_the_ack(services: Services) -> None:
    app = create_app(services.settings, services, components=False)
    install(app, services)
    # mllp_port 0: no listener; the one start-up hook resumes interrupted intake jobs.
    assert [hook.__name__ for hook in services.extras["startup"]] == ["resume_jobs"]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.post("/intake/hl7v2", content=EPIC_A04)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("x-application/hl7-v2+er7")
    assert msa(response.content) == ("CA", "EPC20260714093512001")
    assert isinstance(services.extras[EXTRA_KEY], Hl7Intake)
    assert len(resources(services, "Patient")) == 1


async def test_install_runs_the_mllp_listener_in_the_app_lifespan(services: Services) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    services.settings.mllp_port = port
    app = create_app(services.settings, services, components=False)
    install(app, services, host="127.0.0.1")
    async with app.router.lifespan_context(app), MllpConnection("127.0.0.1", port, timeout=10) as conn:
        ack = await conn.send(EPIC_A04)
    assert msa(ack)[0] == "CA"
    with pytest.raises(OSError):  # the shutdown hook closed the listener
        async with MllpConnection("127.0.0.1", port, timeout=2) as conn:
            await conn.send(EPIC_A04)


def test_a_quarantined_message_replays_after_the_fix(services: Services, intake: Hl7Intake) -> None:
    def refuse(res: dict[str, object]) -> dict[str, object]:
        raise FhirError("business-rule", "encounters are paused")

    services.store.before_write("Encounter", refuse)
    refused = intake.handle(EPIC_A04)
    assert msa(refused)[0] == "CE"
    assert resources(services, "Patient") == []  # nothing half-applied
    with services.store.reader() as uow:
        [entry] = list_quarantine(uow.conn)
    assert "encounters are paused" in entry.reason

    services.store._before_write.clear()  # the fix
    replayed = intake.replay(entry.id)
    assert msa(replayed) == ("CA", "EPC20260714093512001")
    assert len(resources(services, "Encounter")) == 1
    with services.store.reader() as uow:
        assert list_quarantine(uow.conn) == []
        [receipt] = list(uow.conn.execute(select(intake_receipt)))
    assert receipt.outcome == "accepted"
    assert intake.handle(EPIC_A04) == replayed  # a resend now gets the replay's ACK


def test_concurrent_senders_are_all_committed_and_acked(services: Services, intake: Hl7Intake) -> None:
    def message(sender: int, n: int) -> bytes:
        return (
            EPIC_A04.replace(b"E1000001", f"E9{sender:02d}{n:04d}".encode())
            .replace(b"9990000018^^^NHS^HN", b"")
            .replace(b"V20260714001", f"V{sender:02d}{n:04d}".encode())
            .replace(b"EPC20260714093512001", f"EPC{sender:02d}{n:04d}".encode())
        )

    async def run() -> list[list[bytes]]:
        server = await start_mllp_server("127.0.0.1", 0, mllp_handler(intake))
        port = server.sockets[0].getsockname()[1]

        async def sender(s: int) -> list[bytes]:
            async with MllpConnection("127.0.0.1", port, timeout=20) as conn:
                return [await conn.send(message(s, n)) for n in range(5)]

        try:
            return list(await asyncio.gather(*(sender(s) for s in range(6))))
        finally:
            server.close()
            await server.wait_closed()

    acks = asyncio.run(run())
    assert all(msa(a)[0] == "CA" for per_sender in acks for a in per_sender)
    assert len(resources(services, "Patient")) == 30
    assert len(resources(services, "Encounter")) == 30
