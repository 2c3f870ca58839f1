"""The MLLP listener: an asyncio TCP server that hands each message to a handler and writes its ACK.

Durability lives in the handler: it returns the ACK only after the message is committed (stored
and mapped, or quarantined). This module's part is ordering and honesty — messages on one
connection are handled one at a time in arrival order, an ACK is written only after its handler
returned, and a handler failure closes the connection without an ACK so the sender resends.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from gateway.intake.mllp.codec import DEFAULT_MAX_FRAME, FrameTooLarge, MllpDecoder, frame

__all__ = ["Handler", "start_mllp_server"]

Handler = Callable[[bytes], Awaitable[bytes]]
"""Raw message in, ACK bytes out (unframed). Return b"" to send nothing (enhanced mode NE)."""

_READ_SIZE = 64 * 1024
log = structlog.get_logger(__name__)


async def start_mllp_server(
    host: str,
    port: int,
    handler: Handler,
    *,
    max_frame: int = DEFAULT_MAX_FRAME,
    idle_timeout: float | None = None,
) -> asyncio.Server:
    """Start listening (port 0 picks a free port; read it from ``server.sockets``).

    `idle_timeout` closes connections that send nothing for that many seconds.
    """

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve_connection(reader, writer, handler, max_frame=max_frame, idle_timeout=idle_timeout)

    return await asyncio.start_server(on_connect, host, port)


async def _serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    handler: Handler,
    *,
    max_frame: int,
    idle_timeout: float | None,
) -> None:
    peer = writer.get_extra_info("peername")
    decoder = MllpDecoder(max_frame)
    handled = 0
    log.info("mllp.connection.open", peer=str(peer))
    try:
        while True:
            try:
                data = await asyncio.wait_for(reader.read(_READ_SIZE), idle_timeout)
            except TimeoutError:
                log.info("mllp.connection.idle", peer=str(peer))
                break
            if not data:
                break
            try:
                messages = decoder.feed(data)
            except FrameTooLarge as exc:
                log.warning("mllp.frame.too_large", peer=str(peer), size=exc.size, limit=exc.limit)
                break
            for message in messages:
                try:
                    ack = await handler(message)
                except Exception:
                    # No ACK: the sender keeps the message and resends on a new connection.
                    log.exception("mllp.handler.failed", peer=str(peer), size=len(message))
                    return
                handled += 1
                if ack:
                    writer.write(frame(ack))
                    await writer.drain()
            if decoder.overflowed is not None:
                too_large = decoder.overflowed
                log.warning("mllp.frame.too_large", peer=str(peer), size=too_large.size, limit=too_large.limit)
                break
    except (ConnectionError, asyncio.IncompleteReadError) as exc:
        log.info("mllp.connection.lost", peer=str(peer), error=type(exc).__name__)
    finally:
        if decoder.skipped:
            log.info("mllp.bytes.skipped", peer=str(peer), count=decoder.skipped)
        log.info("mllp.connection.close", peer=str(peer), messages=handled)
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
