"""Why an HL7 v2 message cannot be mapped, in terms the ACK can carry back to the sender.

The intake quarantines the raw message with `reason` and answers with `ack_code`; the sender's
interface team reads `reason` (MSA-3 / ERR-8), so it names the field, never the patient.
"""

from __future__ import annotations

from typing import Literal

AckCode = Literal["AA", "AE", "AR"]

# HL7 table 0357 (message error condition codes) used by this package.
SEGMENT_SEQUENCE_ERROR = "100"
REQUIRED_FIELD_MISSING = "101"
DATA_TYPE_ERROR = "102"
TABLE_VALUE_NOT_FOUND = "103"
UNSUPPORTED_MESSAGE_TYPE = "200"
UNSUPPORTED_EVENT_CODE = "201"
UNSUPPORTED_VERSION_ID = "203"
APPLICATION_INTERNAL_ERROR = "207"


class AdtMappingError(Exception):
    """An unmappable message.

    `ack_code` is the original-mode code (AE: the sender should fix and resend; AR: we do not
    accept this kind of message at all); the ACK builder turns it into CE/CR in enhanced mode.
    `location` is an HL7 location such as ``PID^1^3`` (segment, sequence, field) when known.
    """

    def __init__(
        self,
        reason: str,
        ack_code: AckCode = "AE",
        *,
        error_code: str = APPLICATION_INTERNAL_ERROR,
        location: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.ack_code: AckCode = ack_code
        self.error_code = error_code
        self.location = location

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.reason!r}, {self.ack_code!r}, error_code={self.error_code!r})"


class Hl7ParseError(AdtMappingError):
    """The bytes are not a readable HL7 v2 message (no MSH, broken encoding characters …)."""

    def __init__(self, reason: str, *, error_code: str = SEGMENT_SEQUENCE_ERROR) -> None:
        super().__init__(reason, "AR", error_code=error_code, location="MSH")
