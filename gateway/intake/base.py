"""What every intake shares: the store, the registered sources, a clock, and the process's
patient index for person matching."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from gateway.identity.patient_index import PatientIndex
from gateway.intake.sources import SourceRegistry
from gateway.mappings.source import SourceSystem
from gateway.store.api import Store


def utc_now() -> datetime:
    return datetime.now(UTC)


class SourceIntake:
    """Base of the intakes; `kind` and `sender` name the source kind and who sends it (for errors)."""

    kind = ""
    sender = "sender"

    def __init__(
        self,
        store: Store,
        sources: SourceRegistry,
        *,
        now: Callable[[], datetime] = utc_now,
        index: PatientIndex | None = None,
    ) -> None:
        self.store = store
        self.sources = sources
        self.now = now
        self.index = index or PatientIndex(store)

    def default_source(self) -> SourceSystem:
        """The one registered source of this kind; ValueError when there is not exactly one."""
        found = [s for s in self.sources.all() if s.kind == self.kind]
        if len(found) != 1:
            raise ValueError(f"name the {self.sender}'s source id: the registry has no single {self.kind} source")
        return found[0]
