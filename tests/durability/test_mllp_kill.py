"""kill -9 of the gateway in the middle of an MLLP stream: nothing ACKed is lost, a resend duplicates nothing.

One sender keeps one connection and sends ~300 distinct A01/A04 messages one by one (waiting for
each ACK, as an interface engine does) while a thread SIGKILLs the gateway part-way. After the
restart it resends everything, the un-ACKed messages as a real sender would and the ACKed ones too,
to prove the receipts dedupe them.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

import pytest

from gateway.identity.nhs_number import with_check_digit
from gateway.intake.mllp import MllpConnection
from gateway.paths import FIXTURES_DIR
from tests.durability.conftest import Deployment, api_client, share_everything, total

MESSAGES = 300
KILL_AFTER_ACKS = 120

# Each template's tokens that make one message distinct: (MSH-10, hospital number, NHS number, visit number).
TEMPLATES = {
    "adt_a04_epic_v24_enhanced.hl7": ("EPC20260714093512001", "E1000001", "9990000018", "V20260714001"),
    "adt_a01_v23_zsegments.hl7": ("PAS000123401", "K2000002", "9990000026", "IP2026000451"),
}


@dataclass(frozen=True)
class Message:
    control_id: str
    hospital_number: str
    visit_number: str
    raw: bytes


def make_messages(count: int) -> list[Message]:
    """Distinct messages from the fixtures; even ones are A&E registrations (A04), odd ones admissions (A01)."""
    templates = [((FIXTURES_DIR / "hl7v2" / name).read_bytes(), tokens) for name, tokens in TEMPLATES.items()]
    messages = []
    for i in range(count):
        raw, (ctl, hosp, nhs, visit) = templates[i % 2]
        new_ctl, new_hosp, new_visit = f"DUR{i:06d}", f"H{i:07d}", f"VN{i:07d}"
        new_nhs = next(n for k in range(10) if (n := with_check_digit(f"99980{i:03d}{k}")))
        for old, new in ((ctl, new_ctl), (hosp, new_hosp), (nhs, new_nhs), (visit, new_visit)):
            assert raw.count(old.encode()) >= 1
            raw = raw.replace(old.encode(), new.encode())
        messages.append(Message(new_ctl, new_hosp, new_visit, raw))
    assert len({m.control_id for m in messages}) == count
    return messages


def is_positive_ack(ack: bytes, control_id: str) -> bool:
    msa = next(seg for seg in ack.split(b"\r") if seg.startswith(b"MSA|")).split(b"|")
    return msa[1] in (b"AA", b"CA") and msa[2].decode() == control_id


async def send_until_cut(port: int, messages: list[Message], acked: dict[str, bytes], reached: threading.Event) -> None:
    """Send in order on one connection, recording each ACK; stop when the connection dies."""
    try:
        async with MllpConnection("127.0.0.1", port, timeout=10) as conn:
            for message in messages:
                ack = await conn.send(message.raw)
                assert is_positive_ack(ack, message.control_id), ack
                acked[message.control_id] = ack
                if len(acked) >= KILL_AFTER_ACKS:
                    reached.set()
    except (ConnectionError, TimeoutError, OSError):
        return


async def resend_all(port: int, messages: list[Message]) -> dict[str, bytes]:
    acks = {}
    async with MllpConnection("127.0.0.1", port, timeout=10) as conn:
        for message in messages:
            acks[message.control_id] = await conn.send(message.raw)
    return acks


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_kill_9_mid_mllp_stream_loses_nothing_acked_and_resend_duplicates_nothing(deployment: Deployment) -> None:
    messages = make_messages(MESSAGES)
    gw = deployment.process("a")
    gw.start()
    share_everything(gw)

    acked: dict[str, bytes] = {}
    reached = threading.Event()

    def killer() -> None:
        if reached.wait(timeout=60):
            gw.kill()

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    asyncio.run(send_until_cut(gw.mllp_port, messages, acked, reached))
    thread.join(timeout=70)
    assert gw.proc is not None and gw.proc.returncode == -9, "the gateway was not killed mid-stream"
    assert KILL_AFTER_ACKS <= len(acked) < MESSAGES, "the kill did not land part-way"

    gw.start()
    resent = asyncio.run(resend_all(gw.mllp_port, messages))
    for message in messages:
        assert is_positive_ack(resent[message.control_id], message.control_id)
        if message.control_id in acked:  # a repeat gets the ACK it got the first time
            assert resent[message.control_id] == acked[message.control_id]

    with api_client(gw) as fhir:
        assert total(fhir, "Encounter") == MESSAGES
        for message in messages:
            assert total(fhir, "Encounter", identifier=message.visit_number) == 1, message
            assert total(fhir, "Patient", identifier=message.hospital_number) == 1, message
    gw.kill()
