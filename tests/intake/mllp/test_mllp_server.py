"""The MLLP listener over a real loopback socket: order, ACK-after-handler, failures, limits."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from gateway.intake.mllp import MllpConnection, frame, send_mllp, start_mllp_server


def message(n: int) -> bytes:
    return f"MSH|^~\\&|PAS|Z9X|CAREGW|VWARD|20260101120000||ADT^A01^ADT_A01|C{n}|P|2.4\rPID|1||K{n}".encode()


def ack_for(data: bytes) -> bytes:
    control = data.split(b"|")[9]
    return b"MSH|^~\\&|CAREGW|VWARD|PAS|Z9X|20260101120001||ACK^A01^ACK|A" + control + b"|P|2.4\rMSA|AA|" + control


async def serving(handler: Callable[[bytes], Awaitable[bytes]], scenario, **kwargs) -> None:
    server = await start_mllp_server("127.0.0.1", 0, handler, **kwargs)
    port = server.sockets[0].getsockname()[1]
    try:
        await scenario(port)
    finally:
        server.close()
        await server.wait_closed()


def test_many_messages_on_one_connection_are_handled_and_acked_in_order():
    seen: list[bytes] = []

    async def handler(data: bytes) -> bytes:
        # Earlier messages take longer: a server that did not serialise would reorder them.
        await asyncio.sleep(0.01 * (5 - len(seen)) if len(seen) < 5 else 0)
        seen.append(data)
        return ack_for(data)

    async def scenario(port: int) -> None:
        async with MllpConnection("127.0.0.1", port, timeout=5) as conn:
            for n in range(8):  # pipelined: all sent before any ACK is read
                await conn.write(message(n))
            acks = [await conn.read_ack() for _ in range(8)]
        assert seen == [message(n) for n in range(8)]
        assert [a.split(b"|")[-1] for a in acks] == [f"C{n}".encode() for n in range(8)]

    asyncio.run(serving(handler, scenario))


def test_ack_is_written_only_after_the_handler_returns():
    release = asyncio.Event()
    committed: list[bytes] = []

    async def handler(data: bytes) -> bytes:
        await release.wait()
        committed.append(data)
        return ack_for(data)

    async def scenario(port: int) -> None:
        async with MllpConnection("127.0.0.1", port, timeout=0.2) as conn:
            await conn.write(message(1))
            with pytest.raises(TimeoutError):
                await conn.read_ack()  # the handler has not committed yet
            release.set()
            conn.timeout = 5
            ack = await conn.read_ack()
        assert committed == [message(1)]
        assert ack.endswith(b"MSA|AA|C1")

    asyncio.run(serving(handler, scenario))


def test_handler_failure_closes_without_ack():
    async def handler(data: bytes) -> bytes:
        raise RuntimeError("store unavailable")

    async def scenario(port: int) -> None:
        with pytest.raises(ConnectionError):
            await send_mllp("127.0.0.1", port, message(1), timeout=5)

    asyncio.run(serving(handler, scenario))


def test_empty_ack_sends_nothing_and_keeps_the_connection():
    async def handler(data: bytes) -> bytes:
        return b"" if b"|C1|" in data else ack_for(data)

    async def scenario(port: int) -> None:
        async with MllpConnection("127.0.0.1", port, timeout=5) as conn:
            await conn.write(message(1))
            ack = await conn.send(message(2))
        assert ack.endswith(b"MSA|AA|C2")

    asyncio.run(serving(handler, scenario))


def test_junk_between_frames_is_ignored_over_the_socket():
    async def handler(data: bytes) -> bytes:
        return ack_for(data)

    async def scenario(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\r\n" + frame(message(1)) + b"noise" + frame(message(2)))
        await writer.drain()
        data = b""
        while data.count(b"\x1c\x0d") < 2:
            data += await asyncio.wait_for(reader.read(4096), 5)
        writer.close()
        await writer.wait_closed()
        assert b"MSA|AA|C1" in data and b"MSA|AA|C2" in data

    asyncio.run(serving(handler, scenario))


def test_oversized_frame_closes_the_connection():
    handled: list[bytes] = []

    async def handler(data: bytes) -> bytes:
        handled.append(data)
        return ack_for(data)

    async def scenario(port: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x0b" + b"x" * 4096)
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # server closed, nothing sent
        writer.close()
        await writer.wait_closed()
        assert handled == []

    asyncio.run(serving(handler, scenario, max_frame=1024))


def test_send_mllp_round_trip():
    async def handler(data: bytes) -> bytes:
        return ack_for(data)

    async def scenario(port: int) -> None:
        assert (await send_mllp("127.0.0.1", port, message(7), timeout=5)).endswith(b"MSA|AA|C7")

    asyncio.run(serving(handler, scenario))
