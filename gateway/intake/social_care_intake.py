"""Adult social care (CLD) extract intake: read, map each row, write, and report every row.

Rows are written in chunks, one transaction each, by conditional update on each resource's first
identifier, so re-sending an extract (or a later cumulative return repeating its events) writes
nothing new; a Provenance is written only for rows that changed something. A chunk's identifiers
are looked up together and its rows staged in memory (`gateway.intake.chunks`): a resource that
several rows of one chunk change gets one new version, named by each of those rows' Provenance.
Rejected rows, and rows that could not be written (an ambiguous identifier), go to the quarantine
with their reasons; the chunk's other rows go in. The whole extract's report is kept as its
receipt, so the same file sent again is answered from it without touching anything.

On PostgreSQL the database's work on one chunk (COPY, index upkeep, commit: a third of the CPU per
row) overlaps Python's on the next: chunk N is copied in and committed in a thread on its own
connection while chunk N+1 is staged on another, reading through what N wrote (its new versions
and identifiers count as stored, its Patients are match candidates). N+1 locks and checks those
bases, and writes, only after N has committed; if N fails, N+1 is rolled back and the extract
fails as it would have. A chunk's rows are reported (progress, totals) only once it has committed.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

import orjson
import structlog

from gateway.codes import NHS_NUMBER_SYSTEM
from gateway.fhir.errors import FhirError
from gateway.intake.base import SourceIntake, naive_utc
from gateway.intake.chunks import ChunkWrite, Flying, collector_paused
from gateway.intake.receipts import add_quarantine, add_receipt, dedupe_key
from gateway.intake.writes import (
    AmbiguousMatch,
    source_provenance,
    token,
)
from gateway.mappings.social_care import (
    Accepted,
    Rejected,
    RowResult,
    SourceRow,
    UnreadableExtract,
    map_row,
    read_csv,
    read_json,
    report_entry,
    totals,
)
from gateway.mappings.source import SourceSystem
from gateway.store.api import UnitOfWork, WriteTransaction, instant
from gateway.store.engine import is_sqlite
from gateway.types import JSON

log = structlog.get_logger(__name__)

KIND = "social-care"
CHUNK_ROWS = 500
_PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
Progress = Callable[[int, int], None]  # (rows done, rows in the extract)


@dataclass(frozen=True)
class _RowFailure(Rejected):
    """A row that mapped but could not be written (e.g. ambiguous person); reported as rejected."""

    detail: str = ""


class SocialCareIntake(SourceIntake):
    kind = KIND
    sender = "council"

    def count_rows(self, data: bytes, *, filename: str = "extract.csv") -> int:
        """How many rows the extract holds (to decide whether it is answered now or as a job).

        Raises `UnreadableExtract` when it cannot be read at all.
        """
        return sum(1 for _ in _reader(filename, data)(data))

    def ingest(
        self,
        data: bytes,
        *,
        filename: str = "extract.csv",
        source: SourceSystem | None = None,
        progress: Progress | None = None,
    ) -> JSON:
        """The per-row report ({"file", "source_id", "totals", "rows": [...]}) of one extract.

        Raises `UnreadableExtract` (after quarantining the file) when it cannot be read at all.
        """
        source = source or self.default_source()
        key = dedupe_key(KIND.encode(), data)
        earlier = self.earlier_report(source.source_id, key)
        if earlier is not None:
            return earlier
        now = self.now()
        try:
            rows = list(_reader(filename, data)(data))
        except UnreadableExtract as exc:
            self._quarantine_file(data, source, key, str(exc), now)
            raise
        counts = totals(())
        entries: list[JSON] = []
        chunks = [rows[start : start + CHUNK_ROWS] for start in range(0, len(rows), CHUNK_ROWS)]
        # On PostgreSQL a staged chunk is copied in and committed in a thread (its own connection)
        # while the next one is mapped and staged, on what it wrote (`Flying`); a chunk counts as
        # done (report lines, totals, progress, listeners) only once its commit has returned. On
        # SQLite (one writer) chunks are written one after the other and the next chunk is mapped
        # (pure work) in a thread meanwhile. Not both: a mapping thread would contend for Python's
        # lock with the staging thread, which then rarely waits.
        overlap = not is_sqlite(self.store.engine)
        flying: tuple[_StagedChunk, Future[None]] | None = None

        def settle() -> None:
            """Wait for the chunk in flight to commit (raising its error), then account for its rows."""
            nonlocal flying
            if flying is None:
                return
            staged, committed = flying
            flying = None
            committed.result()
            self.store.committed(staged.tx.uow.written)
            # Keep the report lines, not the mapped resources: a large extract's would fill
            # memory and make every garbage collection walk them.
            entries.extend(_entry(r) for r in staged.results)
            for name, count in totals(staged.results).items():
                counts[name] += count
            if progress:
                progress(len(entries), len(rows))

        with (
            collector_paused(),
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="social-care-map") as mapper,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="social-care-commit") as committer,
        ):
            ahead = mapper.submit(_map_chunk, chunks[0], source) if chunks and not overlap else None
            for i, chunk in enumerate(chunks):
                try:
                    mapped = ahead.result() if ahead is not None else _map_chunk(chunk, source)
                    ahead = (
                        mapper.submit(_map_chunk, chunks[i + 1], source)
                        if i + 1 < len(chunks) and not overlap
                        else None
                    )
                    staged = self._stage_chunk(chunk, mapped, source, key, now, flying[0].written if flying else None)
                except BaseException:
                    with suppress(Exception):
                        settle()  # what committed is accounted for; the staging error is the one raised
                    raise
                on_flight = flying is not None
                try:
                    settle()  # the chunk before's commit failing fails the extract
                except BaseException:
                    staged.tx.rollback()
                    raise
                # Once the chunk before has committed: lock what was staged on its versions and drop
                # the rows the new versions replace.
                restage = partial(self._stage_afresh, chunk, source, key, now) if on_flight else None
                staged = _written_out(staged, restage)
                flying = (staged, committer.submit(staged.tx.commit) if overlap else _run(staged.tx.commit))
                if not overlap:
                    settle()
            settle()
        report: JSON = {"file": filename, "source_id": source.source_id, "totals": counts, "rows": entries}
        self.record_report(source.source_id, key, now, report)
        log.info("intake.social_care.ingested", source_id=source.source_id, **report["totals"])
        return report

    # -- writing -------------------------------------------------------------------------------

    def _stage_afresh(self, rows: list[SourceRow], source: SourceSystem, key: str, now: datetime) -> _StagedChunk:
        """The chunk mapped again (staging may have filled in the mapped resources) and staged on
        what is stored, with no chunk in flight."""
        return self._stage_chunk(rows, _map_chunk(rows, source), source, key, now, None)

    def _stage_chunk(
        self,
        rows: list[SourceRow],
        results: list[RowResult],
        source: SourceSystem,
        key: str,
        now: datetime,
        in_flight: Flying | None,
    ) -> _StagedChunk:
        """The chunk's transaction, staged: every row's writes and Provenance queued, ready for
        `write_out` and the commit; a row that cannot be written is rejected alone. `in_flight`:
        what the chunk before wrote, while it is still being committed."""
        final: list[RowResult] = []
        changes: list[tuple[int, list[tuple[str, str]]]] = []
        tx = WriteTransaction(self.store)
        try:
            uow = tx.uow
            chunk = ChunkWrite(uow, self.index, now=now, in_flight=in_flight)
            chunk.preload(res for result in results if isinstance(result, Accepted) for res in result.resources)
            for row, result in zip(rows, results, strict=True):
                if isinstance(result, Rejected):
                    self._quarantine_row(uow, row, source, "; ".join(str(r) for r in result.reasons), now)
                    final.append(result)
                    continue
                try:
                    changes.append((result.row_number, chunk.record(partial(_write_resources, chunk, result))))
                except (AmbiguousMatch, FhirError) as exc:
                    if isinstance(exc, FhirError) and exc.status == 409:
                        raise
                    failure = _RowFailure(result.row_number, (), detail=f"not applied: {exc}")
                    self._quarantine_row(uow, row, source, failure.detail, now)
                    final.append(failure)
                    continue
                final.append(result)
            written = chunk.finish()
            recorded = instant(naive_utc(now))
            for row_number, changed in changes:
                targets = [written.written[k].stored for k in changed if k in written.written]
                if targets:
                    uow.create(
                        source_provenance(
                            source,
                            targets,
                            recorded=recorded,
                            entity_kind="extract-row",
                            entity_value=f"{key}#{row_number}",
                            display=f"Adult social care extract row {row_number}",
                        )
                    )
            uow.format_pending()
        except BaseException:
            tx.rollback()
            raise
        return _StagedChunk(tx, chunk, final, written)

    def _quarantine_row(
        self, uow: UnitOfWork, row: SourceRow, source: SourceSystem, reason: str, now: datetime
    ) -> None:
        raw = orjson.dumps({"row": row.row_number, "values": row.values})
        add_quarantine(
            uow.conn, source_id=source.source_id, kind=KIND, raw=raw, reason=reason, received_at=naive_utc(now)
        )

    def _quarantine_file(self, data: bytes, source: SourceSystem, key: str, reason: str, now: datetime) -> None:
        with self.store.writer() as uow:
            entry_id = add_quarantine(
                uow.conn, source_id=source.source_id, kind=KIND, raw=data, reason=reason, received_at=naive_utc(now)
            )
            add_receipt(
                uow.conn,
                source_id=source.source_id,
                key=key,
                kind=KIND,
                control_id=None,
                received_at=naive_utc(now),
                outcome="rejected",
                ack=orjson.dumps({"error": reason}),
                quarantine_id=entry_id,
            )


@dataclass(frozen=True)
class _StagedChunk:
    tx: WriteTransaction
    write: ChunkWrite
    results: list[RowResult]
    written: Flying  # what the next chunk stages on while this one commits


def _written_out(staged: _StagedChunk, restage: Callable[[], _StagedChunk] | None) -> _StagedChunk:
    """`staged` with its database half written out (rolled back on any error). A chunk staged on
    the one in flight (`restage` given) that finds another writer changed what that one wrote
    (409) is staged again on what is stored now, as a serial ingest would have been."""
    try:
        staged.write.write_out()
        return staged
    except FhirError as exc:
        staged.tx.rollback()
        if exc.status != 409 or restage is None:
            raise
    except BaseException:
        staged.tx.rollback()
        raise
    return _written_out(restage(), None)


def _run(commit: Callable[[], None]) -> Future[None]:
    """`commit` run here and now, as a done future (SQLite: one chunk at a time)."""
    done: Future[None] = Future()
    commit()
    done.set_result(None)
    return done


def _map_chunk(rows: list[SourceRow], source: SourceSystem) -> list[RowResult]:
    return [map_row(row, source=source) for row in rows]


def _reader(filename: str, data: bytes) -> Callable[[bytes], Any]:
    looks_json = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] in (b"{", b"[")
    return read_json if filename.lower().endswith(".json") or looks_json else read_csv


def _entry(result: RowResult) -> JSON:
    if isinstance(result, _RowFailure):
        entry = report_entry(Rejected(result.row_number, ()))
        entry["reasons"] = [result.detail]
        return entry
    return report_entry(result)


def _write_resources(chunk: ChunkWrite, result: Accepted) -> None:
    """The row's Patient first (council id, NHS number, then demographics), then the rest, linked to it."""
    patient, *rest = result.resources
    identifiers = patient.get("identifier") or []
    keys = identifiers[:1] + [i for i in identifiers[1:] if i.get("system") == NHS_NUMBER_SYSTEM]
    patient_id = chunk.person(patient, keys)
    known = {token(identifiers[0]): patient_id} if identifiers else {}
    for res in rest:
        chunk.upsert(res, known)
