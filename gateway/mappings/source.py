"""A registered source system: who sent the data, and the identifier systems its ids live in.

Every mapping takes a `SourceSystem` so that ids from different senders never collide, and
so that Provenance can name the sender.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceSystem:
    """One sender (a trust PAS, a council's case system, a community provider).

    `base_url` is the gateway's public base; identifier systems hang under it as
    `<base>/source/<source_id>/<kind>` (kind: patient-id, encounter-id, person-id, event-id …).
    """

    source_id: str
    name: str
    kind: str  # hospital | social-care | community
    base_url: str
    organization: str | None = None  # "Organization/<id>" of the sending organisation
    timezone: str = "Europe/London"  # for local timestamps without an offset (HL7 TS)

    def identifier_system(self, kind: str) -> str:
        return f"{self.base_url.rstrip('/')}/source/{self.source_id}/{kind}"

    @property
    def device_reference(self) -> str:
        """How Provenance.agent.who names the sending system."""
        return f"{self.base_url.rstrip('/')}/source/{self.source_id}"
