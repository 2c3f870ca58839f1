"""The registered source systems, and which one sent an HL7 v2 message (MSH-3 / MSH-4).

Every identifier system hangs off the source, so an unregistered sender still gets a stable
source of its own (derived from its MSH-3/4) rather than borrowing another sender's number space.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from gateway.mappings.source import SourceSystem
from gateway.types import JSON

log = structlog.get_logger(__name__)

DEFAULT_SOURCES_FILE = Path(__file__).resolve().parents[2] / "fixtures" / "intake" / "sources.json"


@dataclass(frozen=True)
class SenderPattern:
    """One MSH-3/MSH-4 pair naming a source; a None side matches any value."""

    application: str | None
    facility: str | None

    def specificity(self, application: str, facility: str) -> int:
        """-1 when it does not match; otherwise how many sides matched exactly."""
        score = 0
        for want, have in ((self.application, application), (self.facility, facility)):
            if want is None:
                continue
            if want.upper() != have.upper():
                return -1
            score += 1
        return score


def _namespace(hd: str) -> str:
    """HD wire form (``EPIC^1.2.3^ISO``) -> its namespace id (``EPIC``)."""
    return hd.split("^", 1)[0].strip()


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


class SourceRegistry:
    def __init__(self, sources: list[SourceSystem], senders: list[tuple[SenderPattern, str]], base_url: str) -> None:
        self._by_id = {s.source_id: s for s in sources}
        self._senders = senders
        self.base_url = base_url

    @classmethod
    def load(cls, path: Path | None = None, *, base_url: str) -> SourceRegistry:
        data = json.loads((path or DEFAULT_SOURCES_FILE).read_text(encoding="utf-8"))
        sources: list[SourceSystem] = []
        senders: list[tuple[SenderPattern, str]] = []
        for entry in data["sources"]:
            source = SourceSystem(
                source_id=entry["source_id"],
                name=entry["name"],
                kind=entry["kind"],
                base_url=base_url,
                organization=entry.get("organization"),
                timezone=entry.get("timezone", "Europe/London"),
            )
            sources.append(source)
            for sender in entry.get("senders", []):
                pattern = SenderPattern(sender.get("application"), sender.get("facility"))
                senders.append((pattern, source.source_id))
        return cls(sources, senders, base_url)

    def get(self, source_id: str) -> SourceSystem | None:
        return self._by_id.get(source_id)

    def all(self) -> list[SourceSystem]:
        return list(self._by_id.values())

    def for_sender(self, sending_application: str, sending_facility: str) -> SourceSystem:
        """The source for MSH-3/MSH-4 (wire form); the most specific registered pattern wins."""
        app, facility = _namespace(sending_application), _namespace(sending_facility)
        best: tuple[int, str] | None = None
        for pattern, source_id in self._senders:
            score = pattern.specificity(app, facility)
            if score >= 0 and (best is None or score > best[0]):
                best = (score, source_id)
        if best is not None:
            return self._by_id[best[1]]
        source_id = f"hl7-{_slug(app)}-{_slug(facility)}"[:64]
        log.warning("intake.unregistered_sender", source_id=source_id)
        return SourceSystem(
            source_id=source_id,
            name=f"Unregistered HL7 sender {app or '?'} at {facility or '?'}",
            kind="hospital",
            base_url=self.base_url,
        )


def source_organization_stamp(sources: SourceRegistry) -> Callable[[JSON], JSON]:
    """A store hook: data tagged with a registered source system also carries that source's
    organisation, which is what information-sharing agreements restrict by."""
    from gateway.codes import SOURCE_TAG_SYSTEM
    from gateway.consent.agreements import SOURCE_ORGANIZATION_TAG_SYSTEM

    def stamp(res: JSON) -> JSON:
        tags = (res.get("meta") or {}).get("tag") or []
        if any(t.get("system") == SOURCE_ORGANIZATION_TAG_SYSTEM for t in tags):
            return res
        source_id = next((t.get("code") for t in tags if t.get("system") == SOURCE_TAG_SYSTEM), None)
        source = sources.get(source_id) if source_id else None
        if source is None or not source.organization:
            return res
        org = {"system": SOURCE_ORGANIZATION_TAG_SYSTEM, "code": source.organization.split("/")[-1]}
        return {**res, "meta": {**(res.get("meta") or {}), "tag": [*tags, org]}}

    return stamp
