"""POSTing a rest-hook notification over HTTP/1.1: h11 for the protocol, asyncio streams and an own
pool for the connections.

Why not httpx here: a notification is one small POST to an endpoint the gateway already talks
to, and httpx (client, transport, httpcore's pool, h11, anyio) spent about 2.3 ms of the GIL on
each, as much as writing the alert itself; at 100 presentations/s one process has no GIL to spare.
Nearly all of that was the layers around h11 (request and response models, the pool's locks and
anyio's stream wrappers), not h11 itself. So the framing and parsing stay with h11, python-hyper's
maintained sans-IO HTTP/1.1 (the same library httpx uses underneath, so the same validation of what
goes out and what comes back), and this module adds only what h11 leaves to its caller: the sockets
(asyncio streams, TLS with httpx's own SSL context), one `h11.Connection` per kept connection,
reused only when h11 says both sides finished the exchange cleanly, and a small idle pool per
origin. The channel keeps httpx for anything beyond that (an injected client, a proxy from the
environment, credentials in the URL), see `RestHookChannel`.

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

import h11

MAX_IDLE_PER_ORIGIN = 8
USER_AGENT = ("User-Agent", "care-gateway")
"""Sent unless the subscription names its own (some receivers' firewalls refuse requests without one)."""
_HEADER_LIMIT = 64 * 1024
"""h11 refuses a response head still incomplete beyond this (its own default is 16 KiB), so a head
can take at most this and one read more."""
_READ_SIZE = 64 * 1024
_OWN_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})


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
    (another scheme, credentials in the URL, no host, characters that need percent-encoding)."""
    if not url.isascii() or not url.isprintable() or " " in url:
        return None  # httpx percent-encodes it (h11 would refuse such a request target)
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


class _Conn:
    """One kept connection and its h11 state machine (which follows it from one exchange to the next)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.http = h11.Connection(h11.CLIENT, max_incomplete_event_size=_HEADER_LIMIT)

    @property
    def usable(self) -> bool:
        """Idle for h11, and nothing arrived since the last answer: no close, no stray bytes."""
        return (
            self.http.our_state is h11.IDLE
            and not self.writer.is_closing()
            and not self.reader.at_eof()
            and not self.reader._buffer  # type: ignore[attr-defined]
        )

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
        request = _request(origin, target, headers, len(body))
        async with asyncio.timeout(timeout):
            while True:
                conn, reused = self._take(origin), True
                if conn is None:
                    conn, reused = await self._connect(origin), False
                try:
                    status, keep = await self._exchange(conn, request, body)
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
                origin.host, origin.port, ssl=tls, server_hostname=origin.host if tls else None, limit=_READ_SIZE
            )
        except (OSError, ssl.SSLError) as exc:
            raise HookPostError(f"connect failed ({type(exc).__name__})") from exc
        return _Conn(reader, writer)

    @staticmethod
    async def _exchange(conn: _Conn, request: h11.Request, body: bytes) -> tuple[int, bool]:
        """Send and read one response; (status, whether the connection can be used again)."""
        http = conn.http
        answered = ended = False
        status = 0
        try:
            conn.writer.write(http.send(request) + http.send(h11.Data(data=body)) + http.send(h11.EndOfMessage()))
            await conn.writer.drain()
            while not ended:  # read first: right after the request h11 would only say NEED_DATA
                data = await conn.reader.read(_READ_SIZE)
                if not data and not answered:
                    raise _NothingBack
                answered = True
                http.receive_data(data)  # b"" tells h11 the receiver closed: the end of the body, or an error
                while (event := http.next_event()) is not h11.NEED_DATA:
                    kind = type(event)
                    if kind is h11.Response:
                        status = event.status_code  # type: ignore[union-attr]
                    elif kind is h11.EndOfMessage:
                        ended = True
                        break
                    elif kind is not h11.Data and kind is not h11.InformationalResponse:  # 1xx, body: skipped
                        raise HookPostError(f"unexpected {kind.__name__} before the end of the response")
        except (ConnectionError, OSError, ssl.SSLError) as exc:
            if not answered and isinstance(exc, ConnectionResetError | BrokenPipeError):
                raise _NothingBack from exc
            raise HookPostError(f"transport error ({type(exc).__name__})") from exc
        except h11.RemoteProtocolError as exc:  # a malformed answer, cut short, or a head too large
            raise HookPostError("malformed response") from exc
        except h11.LocalProtocolError as exc:
            raise HookPostError("request refused by h11") from exc
        if http.our_state is not h11.DONE or http.their_state is not h11.DONE:
            return status, False  # a close asked for or implied (HTTP/1.0, body to the end)
        http.start_next_cycle()
        return status, not http.trailing_data[0]  # bytes beyond the answer: nothing to trust there

    async def aclose(self) -> None:
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()


class _NothingBack(Exception):
    """Not one byte of a response: the receiver closed the connection as the request went out."""


def _request(origin: Origin, target: str, headers: Sequence[tuple[str, str]], length: int) -> h11.Request:
    """The request h11 will frame; built (and so validated by h11) before any connection is made.

    Host and User-Agent are ours unless the subscription names them; its framing headers
    (Content-Length, Transfer-Encoding, Connection) are dropped, those are the client's business.
    """
    named = {name.lower() for name, _ in headers}
    fields = [("Content-Length", str(length))]
    if "host" not in named:
        fields.append(("Host", origin.host_header))
    if "user-agent" not in named:
        fields.append(USER_AGENT)
    fields.extend((name, value) for name, value in headers if name.lower() not in _OWN_HEADERS)
    try:
        return h11.Request(method="POST", target=target, headers=fields)
    except UnicodeEncodeError as exc:  # h11 encodes str as ASCII
        raise HookPostError("a header that is not ASCII in the subscription's headers") from exc
    except h11.LocalProtocolError as exc:
        raise HookPostError("invalid header in the subscription's headers") from exc
