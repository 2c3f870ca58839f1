"""A small MLLP client for tests and benches: send a message, wait for its ACK.

`MllpConnection` keeps one connection open for many messages, the way a hospital interface engine
does; `send_mllp` is the one-shot form.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

from gateway.intake.mllp.codec import DEFAULT_MAX_FRAME, MllpDecoder, frame

__all__ = ["MllpConnection", "send_mllp"]


class MllpConnection:
    """``async with MllpConnection(host, port) as conn: ack = await conn.send(message)``."""

    def __init__(self, host: str, port: int, *, timeout: float = 10.0, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self._decoder = MllpDecoder(max_frame)
        self._ready: list[bytes] = []
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> MllpConnection:
        self._reader, self._writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), self.timeout)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
            self._writer = None

    async def write(self, message: bytes) -> None:
        """Send without waiting (to pipeline several messages before reading their ACKs)."""
        assert self._writer is not None, "connection is not open"
        self._writer.write(frame(message))
        await self._writer.drain()

    async def read_ack(self) -> bytes:
        """The next ACK on this connection; `TimeoutError` after `timeout` seconds."""
        assert self._reader is not None, "connection is not open"
        async with asyncio.timeout(self.timeout):
            while not self._ready:
                data = await self._reader.read(64 * 1024)
                if not data:
                    raise ConnectionError("connection closed before the ACK arrived")
                self._ready.extend(self._decoder.feed(data))
        return self._ready.pop(0)

    async def send(self, message: bytes) -> bytes:
        await self.write(message)
        return await self.read_ack()


async def send_mllp(host: str, port: int, message: bytes, timeout: float = 10.0) -> bytes:
    """Open a connection, send one message, return its ACK (unframed), close."""
    async with MllpConnection(host, port, timeout=timeout) as conn:
        return await conn.send(message)
