"""The rest-hook's HTTP/1.1 client against real loopback servers: keep-alive, stale connections,
chunked and close-delimited responses, timeouts and refused connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from gateway.alerts.subscriptions.http1 import Http1Client, HttpError

Reply = Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]  # returns False to close the connection


@dataclass
class Server:
    port: int
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook?x=1"


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    return head + await reader.readexactly(length)


async def ok_reply(request: bytes, writer: asyncio.StreamWriter) -> bool:
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
    return True


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Reply], Awaitable[Server]]]:
    servers: list[asyncio.Server] = []

    async def start(reply: Reply) -> Server:
        state = Server(0)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            state.connections += 1
            try:
                while True:
                    request = await _read_request(reader)
                    state.requests.append(request)
                    keep = await reply(request, writer)
                    await writer.drain()
                    if not keep:
                        break
            except (asyncio.IncompleteReadError, ConnectionError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        servers.append(server)
        state.port = server.sockets[0].getsockname()[1]
        return state

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_posts_reuse_one_keep_alive_connection(serve: Callable[[Reply], Awaitable[Server]]) -> None:
    server = await serve(ok_reply)
    client = Http1Client()
    try:
        for n in range(3):
            status = await client.post(
                server.url, b'{"n": %d}' % n, [("Content-Type", "application/fhir+json")], timeout=5
            )
            assert status == 200
    finally:
        await client.aclose()
    assert server.connections == 1
    first = server.requests[0]
    assert first.startswith(b"POST /hook?x=1 HTTP/1.1\r\n")
    assert f"host: 127.0.0.1:{server.port}".encode() in first.lower()
    assert b"content-type: application/fhir+json" in first.lower()
    assert first.endswith(b'{"n": 0}')


async def test_a_connection_the_receiver_closed_is_replaced(serve: Callable[[Reply], Awaitable[Server]]) -> None:
    async def answer_then_close(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")  # keep-alive claimed, then closed anyway
        return False

    server = await serve(answer_then_close)
    client = Http1Client()
    try:
        assert await client.post(server.url, b"{}", [], timeout=5) == 204
        await asyncio.sleep(0.05)
        assert await client.post(server.url, b"{}", [], timeout=5) == 204
    finally:
        await client.aclose()
    assert server.connections == 2
    assert len(server.requests) == 2


async def test_chunked_and_close_delimited_responses(serve: Callable[[Reply], Awaitable[Server]]) -> None:
    async def chunked(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 202 Accepted\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        return True

    async def until_close(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nbody until close")
        return False

    client = Http1Client()
    try:
        assert await client.post((await serve(chunked)).url, b"{}", [], timeout=5) == 202
        assert await client.post((await serve(until_close)).url, b"{}", [], timeout=5) == 200
    finally:
        await client.aclose()


async def test_error_statuses_are_returned(serve: Callable[[Reply], Awaitable[Server]]) -> None:
    async def unavailable(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")
        return True

    client = Http1Client()
    try:
        assert await client.post((await serve(unavailable)).url, b"{}", [], timeout=5) == 503
    finally:
        await client.aclose()


async def test_a_silent_receiver_times_out(serve: Callable[[Reply], Awaitable[Server]]) -> None:
    async def silent(request: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(5)
        return False

    client = Http1Client()
    try:
        with pytest.raises(TimeoutError):
            await client.post((await serve(silent)).url, b"{}", [], timeout=0.2)
    finally:
        await client.aclose()


async def test_refused_connection_and_bad_scheme_raise_http_error() -> None:
    client = Http1Client()
    try:
        with pytest.raises(HttpError, match="connect failed"):
            await client.post("http://127.0.0.1:9/hook", b"{}", [], timeout=5)
        with pytest.raises(HttpError, match="scheme"):
            await client.post("ftp://127.0.0.1/hook", b"{}", [], timeout=5)
    finally:
        await client.aclose()
