"""Receipt and quarantine rows, always written inside the caller's transaction.

A receipt (source, dedupe key) is the proof that an input was durably handled; the quarantine
keeps the raw bytes of what could not be applied, with the reason, until it is replayed.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, select, update

from gateway.store.api import sqlite_insert, sqlite_rows
from gateway.store.schema import intake_quarantine, intake_receipt


def dedupe_key(*parts: bytes) -> str:
    """sha256 over length-prefixed parts, so ("ab", "c") and ("a", "bc") differ."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


@dataclass(frozen=True)
class Receipt:
    id: int
    source_id: str
    outcome: str
    ack: bytes
    quarantine_id: int | None


@dataclass(frozen=True)
class QuarantineEntry:
    id: int
    source_id: str
    kind: str
    raw: bytes
    reason: str
    received_at: datetime
    replayed_at: datetime | None
    status: str


def find_receipt(conn: Connection, source_id: str, key: str) -> Receipt | None:
    r = intake_receipt.c
    row = conn.execute(select(intake_receipt).where(r.source_id == source_id, r.dedupe_key == key)).first()
    if row is None:
        return None
    return Receipt(row.id, row.source_id, row.outcome, bytes(row.ack or b""), row.quarantine_id)


# Both columns of the unique index constrained, so each engine walks that index; built once.
_FIND_RECEIPTS = select(
    intake_receipt.c.id,
    intake_receipt.c.source_id,
    intake_receipt.c.dedupe_key,
    intake_receipt.c.outcome,
    intake_receipt.c.ack,
    intake_receipt.c.quarantine_id,
).where(
    intake_receipt.c.source_id.in_(bindparam("sources", expanding=True)),
    intake_receipt.c.dedupe_key.in_(bindparam("keys", expanding=True)),
)


@functools.lru_cache(maxsize=128)
def _sqlite_find_receipts(sources: int, keys: int) -> str:
    """`_FIND_RECEIPTS` as the SQLite driver takes it, for `sources` source ids and `keys` keys."""
    r = intake_receipt.name
    return (
        f"SELECT id, source_id, dedupe_key, outcome, ack, quarantine_id FROM {r} "
        f"WHERE source_id IN ({', '.join('?' * sources)}) AND dedupe_key IN ({', '.join('?' * keys)})"
    )


def find_receipts(conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Receipt]:
    """The receipts of several (source id, dedupe key) pairs in one query (a group commit's batch).

    On SQLite through the driver (the same statement, built once per count of sources and keys):
    SQLAlchemy's handling of the expanding lists cost ~0.1–0.2 ms per batch, a fixed cost that a
    lone sender's every message pays (every column here is text, integer or bytes as stored).
    """
    wanted = set(keys)
    if not wanted:
        return {}
    sources, digests = sorted({source for source, _ in wanted}), sorted({k for _, k in wanted})
    rows: Iterable[tuple[int, str, str, str, bytes | None, int | None]]
    if conn.dialect.name == "sqlite":
        rows = sqlite_rows(conn, _sqlite_find_receipts(len(sources), len(digests)), [*sources, *digests])
    else:
        rows = conn.execute(_FIND_RECEIPTS, {"sources": sources, "keys": digests}).tuples()
    found: dict[tuple[str, str], Receipt] = {}
    for rid, source_id, key, outcome, ack, quarantine_id in rows:
        if (source_id, key) in wanted:
            found[(source_id, key)] = Receipt(rid, source_id, outcome, bytes(ack or b""), quarantine_id)
    return found


def receipt_row(
    *,
    source_id: str,
    key: str,
    kind: str,
    control_id: str | None,
    received_at: datetime,
    outcome: str,
    ack: bytes,
    quarantine_id: int | None = None,
) -> dict[str, object]:
    """One receipt as a row, for `add_receipts`."""
    return {
        "source_id": source_id,
        "dedupe_key": key,
        "kind": kind,
        "control_id": (control_id or None) and control_id[:64],
        "received_at": received_at,
        "outcome": outcome,
        "ack": ack,
        "quarantine_id": quarantine_id,
    }


def add_receipt(
    conn: Connection,
    *,
    source_id: str,
    key: str,
    kind: str,
    control_id: str | None,
    received_at: datetime,
    outcome: str,
    ack: bytes,
    quarantine_id: int | None = None,
) -> None:
    add_receipts(
        conn,
        [
            receipt_row(
                source_id=source_id,
                key=key,
                kind=kind,
                control_id=control_id,
                received_at=received_at,
                outcome=outcome,
                ack=ack,
                quarantine_id=quarantine_id,
            )
        ],
    )


_INSERT_RECEIPT = intake_receipt.insert()


def add_receipts(conn: Connection, rows: list[dict[str, object]]) -> None:
    """Insert receipt rows (one statement for a whole batch)."""
    if not rows:
        return
    if conn.dialect.name == "sqlite":
        sqlite_insert(conn, intake_receipt, rows)
    else:
        conn.execute(_INSERT_RECEIPT, rows)


def add_quarantine(
    conn: Connection, *, source_id: str, kind: str, raw: bytes, reason: str, received_at: datetime
) -> int:
    result = conn.execute(
        intake_quarantine.insert().values(
            source_id=source_id, kind=kind, raw=raw, reason=reason, received_at=received_at, status="open"
        )
    )
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def _entry(row: object) -> QuarantineEntry:
    return QuarantineEntry(
        id=row.id,  # type: ignore[attr-defined]
        source_id=row.source_id,  # type: ignore[attr-defined]
        kind=row.kind,  # type: ignore[attr-defined]
        raw=bytes(row.raw),  # type: ignore[attr-defined]
        reason=row.reason,  # type: ignore[attr-defined]
        received_at=row.received_at,  # type: ignore[attr-defined]
        replayed_at=row.replayed_at,  # type: ignore[attr-defined]
        status=row.status,  # type: ignore[attr-defined]
    )


def get_quarantined(conn: Connection, entry_id: int) -> QuarantineEntry | None:
    row = conn.execute(select(intake_quarantine).where(intake_quarantine.c.id == entry_id)).first()
    return _entry(row) if row is not None else None


def list_quarantine(conn: Connection, *, status: str | None = "open", limit: int = 100) -> list[QuarantineEntry]:
    q = intake_quarantine.c
    stmt = select(intake_quarantine).order_by(q.id).limit(limit)
    if status:
        stmt = stmt.where(q.status == status)
    return [_entry(row) for row in conn.execute(stmt)]


def mark_replayed(conn: Connection, entry_id: int, *, at: datetime, ack: bytes | None = None) -> None:
    """The entry is resolved; its receipt now answers resends with the replay's outcome."""
    conn.execute(
        update(intake_quarantine).where(intake_quarantine.c.id == entry_id).values(status="replayed", replayed_at=at)
    )
    values: dict[str, object] = {"outcome": "accepted"}
    if ack is not None:
        values["ack"] = ack
    conn.execute(update(intake_receipt).where(intake_receipt.c.quarantine_id == entry_id).values(**values))
