"""Every ADT fixture over one real MLLP connection, mapped and acknowledged in order.

The handler here is a stand-in for the intake (no store): parse, map, ACK — enough to show that
the transport, the mapping and the ACK builder fit together byte for byte.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import hl7

from gateway.intake.mllp import MllpConnection, start_mllp_server
from gateway.mappings.hl7v2 import AdtMappingError, build_ack, build_unparseable_ack, map_parsed, parse_message
from gateway.mappings.source import SourceSystem

FIXTURES = sorted((Path(__file__).resolve().parents[3] / "fixtures" / "hl7v2").glob("*.hl7"))
SOURCE = SourceSystem("northtown-pas", "Northtown Hospitals PAS", "hospital", "https://gateway.example.org")
NOW = datetime(2026, 7, 14, 12, 0, tzinfo=UTC)


async def handler(data: bytes) -> bytes:
    try:
        parsed = parse_message(data)
    except AdtMappingError as exc:
        return build_unparseable_ack(data, exc, now=NOW)
    try:
        map_parsed(parsed, source=SOURCE)
    except AdtMappingError as exc:
        return build_ack(parsed.header, exc.ack_code, now=NOW, error=exc)
    return build_ack(parsed.header, "AA", now=NOW)


def test_all_fixtures_ack_in_order_over_one_connection():
    assert len(FIXTURES) >= 12
    messages = [path.read_bytes() for path in FIXTURES] + [b"not an HL7 message"]

    async def run() -> list[bytes]:
        server = await start_mllp_server("127.0.0.1", 0, handler)
        port = server.sockets[0].getsockname()[1]
        try:
            async with MllpConnection("127.0.0.1", port, timeout=5) as conn:
                for data in messages:
                    await conn.write(data)
                return [await conn.read_ack() for _ in messages]
        finally:
            server.close()
            await server.wait_closed()

    acks = asyncio.run(run())
    results = []
    for data, ack in zip(messages, acks, strict=True):
        parsed = hl7.parse(ack.decode("latin-1"))
        expected_id = parse_message(data).header.control_id if data.startswith(b"MSH") else ""
        assert str(parsed["MSA.F2"]) == expected_id
        results.append(str(parsed["MSA.F1"]))
    # The Epic A04 asked for enhanced mode (CA); the rest are original mode; the junk is rejected.
    epic = [p.name for p in FIXTURES].index("adt_a04_epic_v24_enhanced.hl7")
    assert results[epic] == "CA"
    assert [r for i, r in enumerate(results[:-1]) if i != epic] == ["AA"] * (len(FIXTURES) - 1)
    assert results[-1] == "AR"
