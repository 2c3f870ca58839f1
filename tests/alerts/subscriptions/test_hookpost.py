"""The rest-hook channel's own HTTP/1.1 client against raw receivers on 127.0.0.1: kept connections,
a receiver that closes them, chunked and close-delimited answers, timeouts, bad headers."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gateway.alerts.subscriptions.hookpost import HookPoster, HookPostError, target_of

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@dataclass
class Raw:
    """A receiver that reads whole requests and answers each with what `answer` says."""

    port: int = 0
    requests: list[bytes] = field(default_factory=list)
    connections: int = 0


async def _read_request(reader: asyncio.StreamReader) -> bytes | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    length = next(
        int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
    )
    return head + await reader.readexactly(length)


Answer = Callable[[Raw, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Answer], Awaitable[Raw]]]:
    servers: list[asyncio.Server] = []

    async def start(answer: Answer) -> Raw:
        raw = Raw()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            raw.connections += 1
            try:
                await answer(raw, reader, writer)
            finally:
                writer.close()

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        servers.append(server)
        raw.port = server.sockets[0].getsockname()[1]
        return raw

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def keep_alive(raw: Raw, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while (request := await _read_request(reader)) is not None:
        raw.requests.append(request)
        writer.write(OK)
        await writer.drain()


def url(raw: Raw, path: str = "/hook") -> str:
    return f"http://127.0.0.1:{raw.port}{path}"


async def post(poster: HookPoster, address: str, body: bytes = b"{}", **kw: float) -> int:
    target = target_of(address)
    assert target is not None
    return await poster.post(*target, [("Content-Type", "application/fhir+json")], body, timeout=kw.get("timeout", 5))


async def test_requests_share_one_kept_connection(serve: Callable[[Answer], Awaitable[Raw]]) -> None:
    raw = await serve(keep_alive)
    poster = HookPoster()
    assert [await post(poster, url(raw, "/hook?x=1"), b'{"n": %d}' % i) for i in range(3)] == [200, 200, 200]
    await poster.aclose()
    assert raw.connections == 1 and len(raw.requests) == 3
    head, _, body = raw.requests[0].partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /hook?x=1 HTTP/1.1"
    assert f"Host: 127.0.0.1:{raw.port}".encode() in lines and b"Content-Type: application/fhir+json" in lines
    assert b"User-Agent: care-gateway" in lines
    assert body == b'{"n": 0}'


async def test_a_connection_the_receiver_closed_is_not_used_again(serve: Callable[[Answer], Awaitable[Raw]]) -> None:
    async def one_each(raw: Raw, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raw.requests.append(await _read_request(reader) or b"")
        writer.write(OK)  # says nothing of closing, then closes (an idle keep-alive running out)
        await writer.drain()

    raw = await serve(one_each)
    poster = HookPoster()
    assert await post(poster, url(raw)) == 200
    await asyncio.sleep(0.05)  # the close arrives while the connection is idle
    assert await post(poster, url(raw)) == 200
    await poster.aclose()
    assert raw.connections == 2 and len(raw.requests) == 2


async def test_a_close_crossing_the_request_sends_it_once_more_on_a_new_connection(
    serve: Callable[[Answer], Awaitable[Raw]],
) -> None:
    seen: list[int] = []

    async def drop_second(raw: Raw, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n = raw.connections
        request = await _read_request(reader)
        raw.requests.append(request or b"")
        writer.write(OK)
        await writer.drain()
        if n == 1:  # the next request on this connection is read, then the connection dropped unanswered
            await _read_request(reader)
            seen.append(n)

    raw = await serve(drop_second)
    poster = HookPoster()
    assert await post(poster, url(raw)) == 200
    assert await post(poster, url(raw)) == 200
    await poster.aclose()
    assert raw.connections == 2 and len(raw.requests) == 2 and seen == [1]


async def test_a_fresh_connection_closed_unanswered_is_an_error(serve: Callable[[Answer], Awaitable[Raw]]) -> None:
    async def hang_up(raw: Raw, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)

    raw = await serve(hang_up)
    poster = HookPoster()
    with pytest.raises(HookPostError):
        await post(poster, url(raw))
    assert raw.connections == 1  # not tried again: the deliverer's retry policy decides


def answering(answer: bytes) -> Answer:
    """A receiver that gives every request on a connection the same `answer`."""

    async def reply(raw: Raw, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (request := await _read_request(reader)) is not None:
            raw.requests.append(request)
            writer.write(answer)
            await writer.drain()

    return reply


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n",
        b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",  # no length, and no body to read to the end
    ],
)
async def test_chunked_and_informational_answers_leave_the_connection_usable(
    serve: Callable[[Answer], Awaitable[Raw]], answer: bytes
) -> None:
    raw = await serve(answering(answer))
    poster = HookPoster()
    status = int(answer.rsplit(b"HTTP/1.1 ", 1)[1][:3])
    assert [await post(poster, url(raw), timeout=2), await post(poster, url(raw), timeout=2)] == [status, status]
    await poster.aclose()
    assert raw.connections == 1


async def test_a_close_delimited_answer_ends_the_connection(serve: Callable[[Answer], Awaitable[Raw]]) -> None:
    async def http10(raw: Raw, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raw.requests.append(await _read_request(reader) or b"")
        writer.write(b"HTTP/1.0 503 Busy\r\n\r\ncome back later")

    raw = await serve(http10)
    poster = HookPoster()
    assert [await post(poster, url(raw)), await post(poster, url(raw))] == [503, 503]
    await poster.aclose()
    assert raw.connections == 2


async def test_a_silent_receiver_times_out(serve: Callable[[Answer], Awaitable[Raw]]) -> None:
    async def silent(raw: Raw, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(5)

    raw = await serve(silent)
    poster = HookPoster()
    with pytest.raises(TimeoutError):
        await post(poster, url(raw), timeout=0.2)
    await poster.aclose()


async def test_header_injection_is_refused_before_anything_is_sent(serve: Callable[[Answer], Awaitable[Raw]]) -> None:
    raw = await serve(keep_alive)
    target = target_of(url(raw))
    assert target is not None
    with pytest.raises(HookPostError):
        await HookPoster().post(*target, [("X-Bad", "a\r\nInjected: yes")], b"{}", timeout=5)
    with pytest.raises(HookPostError):
        await HookPoster().post(*target, [("X-Name", "Zoë")], b"{}", timeout=5)
    assert raw.connections == 0


async def test_a_bad_header_name_is_refused_before_anything_is_sent(serve: Callable[[Answer], Awaitable[Raw]]) -> None:
    raw = await serve(keep_alive)
    target = target_of(url(raw))
    assert target is not None
    for name in ("Bad Name", "X-Colon:", ""):
        with pytest.raises(HookPostError):
            await HookPoster().post(*target, [(name, "x")], b"{}", timeout=5)
    assert raw.connections == 0


@pytest.mark.parametrize(
    "answer",
    [
        b"garbage\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Header: x\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",  # then closed
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * (256 * 1024) + b"\r\n\r\n",  # a head far beyond 64 KiB
        b"HTTP/1.1 200 OK\r\n",  # cut short in the head
    ],
)
async def test_a_malformed_or_cut_answer_is_an_error_and_not_sent_again(
    serve: Callable[[Answer], Awaitable[Raw]], answer: bytes
) -> None:
    async def reply(raw: Raw, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raw.requests.append(await _read_request(reader) or b"")
        writer.write(answer)
        await writer.drain()

    raw = await serve(reply)
    poster = HookPoster()
    with pytest.raises(HookPostError):
        await post(poster, url(raw), timeout=2)
    await poster.aclose()
    assert raw.connections == 1 and len(raw.requests) == 1  # bytes came back: the deliverer decides


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",  # left open by the receiver
        OK + b"HTTP/1.1 200 OK\r\n",  # bytes beyond the answer: nothing to trust on that connection
    ],
)
async def test_an_answer_that_ends_the_exchange_uncleanly_ends_the_connection(
    serve: Callable[[Answer], Awaitable[Raw]], answer: bytes
) -> None:
    raw = await serve(answering(answer))
    poster = HookPoster()
    assert [await post(poster, url(raw), timeout=2), await post(poster, url(raw), timeout=2)] == [200, 200]
    await poster.aclose()
    assert raw.connections == 2


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl to make a certificate")
async def test_https_with_the_receivers_certificate_verified(tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    make = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1"]
    subprocess.run(
        [*make, "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True,
        capture_output=True,
    )
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    raw = Raw()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raw.connections += 1
        await keep_alive(raw, reader, writer)
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    try:
        trusting = HookPoster(ssl.create_default_context(cafile=str(cert)))
        assert [await post(trusting, f"https://localhost:{port}/hook") for _ in range(2)] == [200, 200]
        await trusting.aclose()
        assert raw.connections == 1 and len(raw.requests) == 2
        with pytest.raises(HookPostError):  # the default trust store does not know this certificate
            await post(HookPoster(), f"https://localhost:{port}/hook")
    finally:
        server.close()
        await server.wait_closed()


def test_only_plain_http_urls_are_taken() -> None:
    assert target_of("https://[::1]:8443/a/b") is not None
    origin, target = target_of("https://[::1]/a/b?c=d") or (None, "")
    assert origin is not None and origin.host_header == "[::1]" and target == "/a/b?c=d"
    assert target_of("http://user:pw@example.org/hook") is None
    assert target_of("ftp://example.org/hook") is None
    assert target_of("http://example.org/hook/é") is None  # left to httpx, which percent-encodes
    assert target_of("http://example.org:99999/") is None


def test_urls_with_spaces_or_controls_are_left_to_httpx() -> None:
    assert target_of("http://example.org/a b") is None  # h11 refuses such a target; httpx percent-encodes
    assert target_of("http://example.org/a\tb") is None
    assert target_of("http://example.org/a%20b") is not None
