"""What every intake shares: the store, the registered sources, a clock, and the process's
patient index for person matching."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.identity.patient_index import PatientIndex
from gateway.intake.receipts import add_receipt, find_receipt
from gateway.intake.sources import SourceRegistry
from gateway.mappings.source import SourceSystem
from gateway.store.api import Store


def utc_now() -> datetime:
    return datetime.now(UTC)


def naive_utc(moment: datetime) -> datetime:
    """`moment` in UTC without tzinfo, as the receipt and quarantine tables store it."""
    return moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment


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

    # -- whole files (extracts, record batches): answered once, the same report for a resend --------

    def earlier_report(self, source_id: str, key: str) -> dict[str, Any] | None:
        """The report given for this very file before (by its dedupe key), if it was received."""
        with self.store.reader() as uow:
            seen = find_receipt(uow.conn, source_id, key)
        if seen is None:
            return None
        report: dict[str, Any] = orjson.loads(seen.ack)
        return report

    def record_report(self, source_id: str, key: str, now: datetime, report: dict[str, Any]) -> None:
        """Keep the file's report as its receipt (unless a concurrent send of it already did)."""
        with self.store.writer() as uow:
            if find_receipt(uow.conn, source_id, key) is None:
                add_receipt(
                    uow.conn,
                    source_id=source_id,
                    key=key,
                    kind=self.kind,
                    control_id=None,
                    received_at=naive_utc(now),
                    outcome="accepted",
                    ack=orjson.dumps(report),
                )
