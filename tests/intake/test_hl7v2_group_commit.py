"""Group commit of HL7 v2 messages, through the real MLLP socket and a real SQLite store.

Messages waiting together on several connections are applied in one transaction, and each ACK is
written only after that transaction committed. Within a batch: messages apply in arrival order
(an A11 after its A01), a poison message is quarantined alone, and a repeat is answered like the
first and changes nothing. To build a batch deterministically, a store hook holds the writer inside
the transaction of a first "gate" message until the test has queued the rest.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import hl7
import pytest
from sqlalchemy import func, select

from gateway.app import build_services
from gateway.fhir.errors import FhirError
from gateway.fhir.services import Services
from gateway.intake.hl7v2_intake import Hl7Intake
from gateway.intake.mllp import MllpConnection, start_mllp_server
from gateway.intake.receipts import list_quarantine
from gateway.intake.sources import SourceRegistry
from gateway.intake.web import mllp_handler
from gateway.settings import Settings
from gateway.store.api import StoredResource
from gateway.store.schema import intake_receipt

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hl7v2"
NOW = datetime(2026, 7, 14, 12, 0, tzinfo=UTC)
EPIC_A04 = (FIXTURES / "adt_a04_epic_v24_enhanced.hl7").read_bytes()
GATE_VISIT = "VGATE"


def a04(tag: str) -> bytes:
    """The Epic A04 as a new person of their own (hospital number E<tag>, a made-up name and birth
    date, no NHS number or address, so demographic matching links no one) at a new visit V<tag>."""
    born = 19000101 + sum(tag.encode()) * 101
    segments = [
        f"PID|1||E{tag}^^^EPI^MR||TEST{tag}^Given{tag}||{born}|F".encode() if seg.startswith(b"PID|") else seg
        for seg in EPIC_A04.split(b"\r")
    ]
    return (
        b"\r".join(segments)
        .replace(b"V20260714001", f"V{tag}".encode())
        .replace(b"EPC20260714093512001", f"EPC{tag}".encode())
    )


def msa(ack: bytes) -> tuple[str, str]:
    parsed = hl7.parse(ack.decode("latin-1"))
    return str(parsed["MSA.F1"]), str(parsed["MSA.F2"])


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    settings = Settings(data_dir=tmp_path, mllp_port=0, base_url="https://gw.example.org", log_json=False)
    built = build_services(settings)
    yield built
    built.store.engine.dispose()


class Gate:
    """Holds the writer inside the transaction of the message whose visit is `GATE_VISIT`."""

    def __init__(self, services: Services) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        services.store.before_write("Encounter", self._hook)

    def _hook(self, res: dict[str, object]) -> dict[str, object]:
        if any(i.get("value") == GATE_VISIT for i in res.get("identifier") or []):  # type: ignore[attr-defined]
            self.entered.set()
            assert self.release.wait(20), "the test never released the gate"
        return res


@pytest.fixture
def intake(services: Services) -> Iterator[Hl7Intake]:
    sources = SourceRegistry.load(base_url=services.settings.base_url)
    built = Hl7Intake(services.store, sources, now=lambda: NOW)
    yield built
    built.close()


@pytest.fixture
def transactions(services: Services) -> list[list[StoredResource]]:
    """What each committed transaction wrote, in commit order."""
    seen: list[list[StoredResource]] = []
    services.store.on_commit(lambda written: seen.append(list(written)))
    return seen


@asynccontextmanager
async def listening(intake: Hl7Intake) -> AsyncIterator[int]:
    server = await start_mllp_server("127.0.0.1", 0, mllp_handler(intake))
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def until(condition: Callable[[], bool], what: str) -> None:
    for _ in range(2000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"gave up waiting: {what}")


async def batch_behind_gate(
    intake: Hl7Intake, gate: Gate, port: int, messages: list[bytes]
) -> tuple[bytes, list[bytes]]:
    """Send the gate message, then each of `messages` on its own connection, one after another in
    that order, so that they queue (in order) while the gate holds the writer; then release it.
    Returns the gate's ACK and the others' ACKs."""
    async with MllpConnection("127.0.0.1", port, timeout=20) as gate_conn:
        await gate_conn.write(a04("GATE").replace(b"VGATE", GATE_VISIT.encode()))
        await until(gate.entered.is_set, "the gate message to reach the writer")
        conns = [MllpConnection("127.0.0.1", port, timeout=20) for _ in messages]
        try:
            for n, (conn, message) in enumerate(zip(conns, messages, strict=True), start=1):
                await conn.__aenter__()
                await conn.write(message)
                await until(lambda n=n: intake.committer.queued == n, f"{n} message(s) queued")
            gate.release.set()
            gate_ack = await gate_conn.read_ack()
            acks = list(await asyncio.gather(*(conn.read_ack() for conn in conns)))
        finally:
            for conn in conns:
                await conn.close()
    return gate_ack, acks


def count(services: Services, rtype: str) -> int:
    with services.store.reader() as uow:
        return len(uow.history(rtype, count=1000)[0])


def receipts(services: Services) -> int:
    with services.store.reader() as uow:
        return int(uow.conn.execute(select(func.count()).select_from(intake_receipt)).scalar_one())


def test_messages_waiting_on_several_connections_commit_in_one_transaction(
    services: Services, intake: Hl7Intake, transactions: list[list[StoredResource]]
) -> None:
    gate = Gate(services)
    messages = [a04(f"B{n}") for n in range(5)]

    async def run() -> tuple[bytes, list[bytes]]:
        async with listening(intake) as port:
            return await batch_behind_gate(intake, gate, port, messages)

    gate_ack, acks = asyncio.run(run())
    assert msa(gate_ack) == ("CA", "EPCGATE")
    assert [msa(a) for a in acks] == [("CA", f"EPCB{n}") for n in range(5)]
    # The gate's own transaction, then one for the five: Patient, Encounter and Provenance each.
    assert [len(t) for t in transactions] == [3, 15]
    assert [r.type for r in transactions[1]] == ["Patient", "Encounter", "Provenance"] * 5
    assert count(services, "Encounter") == 6
    assert receipts(services) == 6


def test_no_ack_before_the_batch_commits_and_the_data_is_there_when_it_arrives(
    services: Services, intake: Hl7Intake
) -> None:
    gate = Gate(services)

    async def run() -> bytes:
        async with listening(intake) as port, MllpConnection("127.0.0.1", port, timeout=0.3) as conn:
            await conn.write(a04("GATE").replace(b"VGATE", GATE_VISIT.encode()))
            await until(gate.entered.is_set, "the gate message to reach the writer")
            with pytest.raises(TimeoutError):
                await conn.read_ack()  # inside the transaction: nothing committed, nothing acked
            assert count(services, "Patient") == 0  # another connection sees nothing yet
            gate.release.set()
            conn.timeout = 20
            return await conn.read_ack()

    ack = asyncio.run(run())
    assert msa(ack) == ("CA", "EPCGATE")
    assert count(services, "Patient") == 1
    assert receipts(services) == 1


def test_a_poison_message_in_a_batch_is_quarantined_alone(
    services: Services, intake: Hl7Intake, transactions: list[list[StoredResource]]
) -> None:
    gate = Gate(services)

    def refuse(res: dict[str, object]) -> dict[str, object]:
        if any(i.get("value") == "VB1" for i in res.get("identifier") or []):  # type: ignore[attr-defined]
            raise FhirError("business-rule", "this visit is refused")
        return res

    services.store.before_write("Encounter", refuse)
    messages = [a04("B0"), a04("B1"), b"not an HL7 message", a04("B3")]

    async def run() -> list[bytes]:
        async with listening(intake) as port:
            return (await batch_behind_gate(intake, gate, port, messages))[1]

    acks = asyncio.run(run())
    assert [msa(a)[0] for a in acks] == ["CA", "CE", "AR", "CA"]
    assert [msa(a)[1] for a in acks] == ["EPCB0", "EPCB1", "", "EPCB3"]
    # The three good ones in one transaction; nothing of the refused one (its Patient was rolled back).
    assert [r.type for r in transactions[1]] == ["Patient", "Encounter", "Provenance"] * 2
    assert count(services, "Patient") == 3  # gate, B0, B3
    with services.store.reader() as uow:
        entries = list_quarantine(uow.conn)
    assert [e.raw for e in entries] == [messages[1], messages[2]]
    assert "this visit is refused" in entries[0].reason
    assert receipts(services) == 5


def test_a_repeat_inside_one_batch_gets_the_same_ack_and_changes_nothing(
    services: Services, intake: Hl7Intake, transactions: list[list[StoredResource]]
) -> None:
    gate = Gate(services)
    message = a04("D1")

    async def run() -> list[bytes]:
        async with listening(intake) as port:
            return (await batch_behind_gate(intake, gate, port, [message, a04("D2"), message]))[1]

    first, other, repeat = asyncio.run(run())
    assert msa(first) == ("CA", "EPCD1")
    assert repeat == first
    assert msa(other) == ("CA", "EPCD2")
    assert [r.type for r in transactions[1]] == ["Patient", "Encounter", "Provenance"] * 2
    assert receipts(services) == 3  # gate, D1 once, D2

    async def resend() -> bytes:  # and a later resend is answered from the receipt
        async with listening(intake) as port, MllpConnection("127.0.0.1", port, timeout=20) as conn:
            return await conn.send(message)

    assert asyncio.run(resend()) == first
    assert count(services, "Encounter") == 3


def test_messages_for_one_patient_apply_in_arrival_order_within_a_batch(
    services: Services, intake: Hl7Intake, transactions: list[list[StoredResource]]
) -> None:
    gate = Gate(services)
    admit, cancel = (
        (FIXTURES / "adt_a01_v23_zsegments.hl7").read_bytes(),
        (FIXTURES / "adt_a11_cancel_admit.hl7").read_bytes(),
    )

    async def run() -> list[bytes]:
        async with listening(intake) as port:
            return (await batch_behind_gate(intake, gate, port, [admit, cancel]))[1]

    acks = asyncio.run(run())
    assert [msa(a) for a in acks] == [("AA", "PAS000123401"), ("AA", "PAS000123411")]
    assert len(transactions) == 2  # gate, then admit + cancel together
    encounters = [r for r in transactions[1] if r.type == "Encounter"]
    assert [e.version_id for e in encounters] == [1, 2]
    assert encounters[-1].json()["status"] == "entered-in-error"
    with services.store.reader() as uow:
        [stored] = [s for s in uow.fetch_many([("Encounter", encounters[0].id)])]
    assert stored.json()["status"] == "entered-in-error"


def test_a_lone_sender_never_waits_for_company(services: Services) -> None:
    """With an hour's `max_wait`, a lone sender's messages still go at once (else this would hang)."""
    sources = SourceRegistry.load(base_url=services.settings.base_url)
    lone = Hl7Intake(services.store, sources, now=lambda: NOW, max_wait=3600)
    committer = lone.committer

    async def run() -> list[bytes]:
        async with listening(lone) as port, MllpConnection("127.0.0.1", port, timeout=20) as conn:
            return [await conn.send(a04(f"L{n}")) for n in range(3)]

    try:
        acks = asyncio.run(run())
    finally:
        lone.close()
    assert [msa(a) for a in acks] == [("CA", f"EPCL{n}") for n in range(3)]
    assert committer.batches == 3
