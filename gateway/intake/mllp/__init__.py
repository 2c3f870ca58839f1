"""MLLP transport (framing, listener, client). It knows nothing of HL7 content: the handler does."""

from __future__ import annotations

from gateway.intake.mllp.client import MllpConnection, send_mllp
from gateway.intake.mllp.codec import FrameTooLarge, MllpDecoder, frame
from gateway.intake.mllp.server import Handler, start_mllp_server

__all__ = ["FrameTooLarge", "Handler", "MllpConnection", "MllpDecoder", "frame", "send_mllp", "start_mllp_server"]
