"""POSTing a rest-hook notification over HTTP/1.1 on asyncio streams, with kept-alive connections.

Why not httpx here: a notification is one small POST to an endpoint the gateway already talks
to, and httpx (client, transport, httpcore's pool, h11, anyio) spent about 2.3 ms of the GIL on
each, as much as writing the alert itself; at 100 presentations/s one process has no GIL to spare.
This does only what a rest-hook needs: one request line and headers written at once, the
status and the body read back (length, chunked, or to the end), the connection kept for the next
notification to the same origin. The channel keeps httpx for anything beyond that (an injected
client, a proxy from the environment, credentials in the URL), see `RestHookChannel`.

A kept connection that the receiver has closed meanwhile (its keep-alive ran out) is noticed
before use, or, when the close crosses the request, by getting not one byte back: then the
request goes once more on a new connection, as httpx's pool would have failed it and the
deliverer sent it again anyway. Receivers tell a repeat by its event number.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

MAX_IDLE_PER_ORIGIN = 8
USER_AGENT = "User-Agent: care-gateway"
"""Sent unless the subscription names its own (some receivers' firewalls refuse requests without one)."""
_HEADER_LIMIT = 64 * 1024
_NO_BODY = frozenset({204, 304})
"""Answers that never have a body (RFC 9112 §6.3), whatever their headers say."""
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class HookPostError(Exception):
    """The POST did not complete (connect, write or read failed, or the response was malformed)."""


@dataclass(frozen=True)
class Origin:
    scheme: str
    host: str
    port: int

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def target_of(url: str) -> tuple[Origin, str] | None:
    """Origin and request target of a plain http(s) URL; None for what this client leaves to httpx
    (another scheme, credentials in the URL, no host)."""
    if not url.isascii():
        return None  # httpx percent-encodes it
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return None
    origin = Origin(parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80))
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return origin, target


def _check_header(name: str, value: str) -> None:
    if not name or any(c in name for c in " \t\r\n:\0") or any(c in value for c in "\r\n\0"):
        raise HookPostError("invalid header in the subscription's headers")


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @property
    def usable(self) -> bool:
        return not self.writer.is_closing() and not self.reader.at_eof() and not self.reader._buffer  # type: ignore[attr-defined]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class HookPoster:
    """Keeps up to `MAX_IDLE_PER_ORIGIN` idle connections per origin; not thread-safe (one event loop)."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl = ssl_context
        self._idle: dict[Origin, list[_Conn]] = {}

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            import httpx  # the same trust store and settings as httpx's (certifi, SSL_CERT_FILE …)

            self._ssl = httpx.create_ssl_context()
        return self._ssl

    async def post(
        self, origin: Origin, target: str, headers: Sequence[tuple[str, str]], body: bytes, *, timeout: float
    ) -> int:
        """POST `body`; the response status. Raises `HookPostError`, or `TimeoutError` after `timeout` s."""
        head = [f"POST {target} HTTP/1.1", f"Content-Length: {len(body)}"]
        named = {name.lower() for name, _ in headers}
        if "host" not in named:
            head.append(f"Host: {origin.host_header}")
        if "user-agent" not in named:
            head.append(USER_AGENT)
        for name, value in headers:
            _check_header(name, value)
            if name.lower() not in _OWN_HEADERS or name.lower() == "host":
                head.append(f"{name}: {value}")
        try:
            request = ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + body
        except UnicodeEncodeError as exc:
            raise HookPostError("a header that is not ASCII in the subscription's headers") from exc
        async with asyncio.timeout(timeout):
            while True:
                conn, reused = self._take(origin), True
                if conn is None:
                    conn, reused = await self._connect(origin), False
                try:
                    status, keep = await self._exchange(conn, request)
                except _NothingBack:
                    conn.close()
                    if reused:
                        continue  # the receiver had closed it: once more, on a new connection
                    raise HookPostError("connection closed without a response") from None
                except BaseException:
                    conn.close()
                    raise
                if keep:
                    self._give_back(origin, conn)
                else:
                    conn.close()
                return status

    def _take(self, origin: Origin) -> _Conn | None:
        idle = self._idle.get(origin)
        while idle:
            conn = idle.pop()
            if conn.usable:
                return conn
            conn.close()
        return None

    def _give_back(self, origin: Origin, conn: _Conn) -> None:
        idle = self._idle.setdefault(origin, [])
        idle.append(conn)
        while len(idle) > MAX_IDLE_PER_ORIGIN:
            idle.pop(0).close()

    async def _connect(self, origin: Origin) -> _Conn:
        tls = self._tls() if origin.scheme == "https" else None
        try:
            reader, writer = await asyncio.open_connection(
                origin.host, origin.port, ssl=tls, server_hostname=origin.host if tls else None, limit=_HEADER_LIMIT
            )
        except (OSError, ssl.SSLError) as exc:
            raise HookPostError(f"connect failed ({type(exc).__name__})") from exc
        return _Conn(reader, writer)

    async def _exchange(self, conn: _Conn, request: bytes) -> tuple[int, bool]:
        """Send and read one response; (status, whether the connection can be used again)."""
        answered = False
        try:
            conn.writer.write(request)
            await conn.writer.drain()
            while True:
                try:
                    raw = await conn.reader.readuntil(b"\r\n\r\n")
                except asyncio.IncompleteReadError as exc:
                    if not exc.partial and not answered:
                        raise _NothingBack from exc
                    raise HookPostError("response cut short") from exc
                answered = True
                status, version, fields = _parse_head(raw)
                if 100 <= status < 200:
                    continue  # 100 Continue and the like: the real answer follows
                break
            keep = version == "HTTP/1.1" and "close" not in fields.get("connection", "").lower()
            if status in _NO_BODY:
                return status, keep
            await self._skip_body(conn.reader, fields)
            if "content-length" not in fields and "chunked" not in fields.get("transfer-encoding", "").lower():
                keep = False  # the body ran to the end of the connection
            return status, keep
        except (ConnectionError, OSError, ssl.SSLError) as exc:
            if not answered and isinstance(exc, ConnectionResetError | BrokenPipeError):
                raise _NothingBack from exc
            raise HookPostError(f"transport error ({type(exc).__name__})") from exc
        except asyncio.IncompleteReadError as exc:
            raise HookPostError("response cut short") from exc
        except (asyncio.LimitOverrunError, ValueError) as exc:
            raise HookPostError("malformed response") from exc

    @staticmethod
    async def _skip_body(reader: asyncio.StreamReader, fields: dict[str, str]) -> None:
        if "chunked" in fields.get("transfer-encoding", "").lower():
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                        pass
                    return
                await reader.readexactly(size + 2)
        length = fields.get("content-length")
        if length is not None:
            await reader.readexactly(int(length))
            return
        while await reader.read(65536):
            pass

    async def aclose(self) -> None:
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()


class _NothingBack(Exception):
    """Not one byte of a response: the receiver closed the connection as the request went out."""


def _parse_head(raw: bytes) -> tuple[int, str, dict[str, str]]:
    lines = raw.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/1."):
        raise ValueError("not an HTTP/1.x response")
    status = int(rest[:3])
    fields: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError("malformed header line")
        key = name.strip().lower()
        fields[key] = f"{fields[key]}, {value.strip()}" if key in fields else value.strip()
    return status, version, fields
