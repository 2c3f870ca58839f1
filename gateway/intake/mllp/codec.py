"""MLLP framing: ``0x0B`` message ``0x1C 0x0D``.

The decoder is incremental because TCP delivers bytes, not messages: a frame may arrive in pieces
or several in one read. Bytes outside a frame (keep-alive newlines, a half-sent frame abandoned by
a restarting sender) are skipped and counted, never passed on as a message.
"""

from __future__ import annotations

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c\x0d"
DEFAULT_MAX_FRAME = 4 * 1024 * 1024

__all__ = ["DEFAULT_MAX_FRAME", "END_BLOCK", "START_BLOCK", "FrameTooLarge", "MllpDecoder", "frame"]


class FrameTooLarge(ValueError):
    """A frame grew past the decoder's limit; the decoder has dropped it and resynchronised."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"MLLP frame of at least {size} bytes exceeds the {limit}-byte limit")
        self.size = size
        self.limit = limit


def frame(message: bytes) -> bytes:
    """Wrap one message for the wire."""
    return START_BLOCK + message + END_BLOCK


class MllpDecoder:
    """Feed bytes in, get complete message payloads out (without the framing bytes)."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self.skipped = 0  # bytes discarded outside frames (for diagnostics)
        self._buffer = bytearray()
        self._in_frame = False
        self._scanned = 0  # how far the current frame has been searched for END_BLOCK
        self._overflow: FrameTooLarge | None = None

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held back."""
        return len(self._buffer) if self._in_frame else 0

    @property
    def overflowed(self) -> FrameTooLarge | None:
        """Set when the last `feed` returned frames but then dropped an oversized one."""
        return self._overflow

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return every frame they complete, in order.

        Raises `FrameTooLarge` when a frame passes `max_frame` without ending (after first
        returning any frames completed before it, so none is lost).
        """
        if self._overflow is not None:
            error, self._overflow = self._overflow, None
            raise error
        self._buffer += data
        frames: list[bytes] = []
        while True:
            if not self._in_frame:
                start = self._buffer.find(START_BLOCK)
                if start < 0:
                    self.skipped += len(self._buffer)
                    self._buffer.clear()
                    return frames
                self.skipped += start
                del self._buffer[: start + 1]
                self._in_frame = True
                self._scanned = 0
            end = self._buffer.find(END_BLOCK, self._scanned)
            restart = self._buffer.find(START_BLOCK, self._scanned, end if end >= 0 else len(self._buffer))
            if restart >= 0:
                # A new frame began before this one ended: the sender gave up on it. Drop it.
                self.skipped += restart + 1
                del self._buffer[: restart + 1]
                self._scanned = 0
                continue
            if end < 0:
                self._scanned = max(0, len(self._buffer) - 1)  # END_BLOCK may straddle two reads
                if len(self._buffer) > self.max_frame:
                    size = len(self._buffer)
                    self._buffer.clear()
                    self._in_frame = False
                    self.skipped += size
                    if not frames:
                        raise FrameTooLarge(size, self.max_frame)
                    self._overflow = FrameTooLarge(size, self.max_frame)
                return frames
            frames.append(bytes(self._buffer[:end]))
            del self._buffer[: end + len(END_BLOCK)]
            self._in_frame = False
