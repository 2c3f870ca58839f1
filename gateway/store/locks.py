"""Named locks held until the end of the current transaction, across every gateway process.

For work two processes must not do at once on one database: creating the same new person,
writing the same case-finding assessments. PostgreSQL: `pg_advisory_xact_lock` on a 64-bit key
hashed from the name, released by the commit or rollback (never by hand, so never leaked). SQLite:
nothing to do, since a write transaction (`BEGIN IMMEDIATE`) already holds the database's one
write lock.

Two names that hash alike only make their holders wait for each other, never share data. Names are
taken in sorted key order, so two transactions taking the same names never wait on each other in
a circle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from sqlalchemy import Connection, text

# One round trip for any number of keys: the function scan takes them in array order (sorted below).
_LOCK = text("SELECT count(pg_advisory_xact_lock(k)) FROM unnest(CAST(:keys AS bigint[])) AS k")


def lock_key(name: str) -> int:
    """The signed 64-bit advisory-lock key of `name` (stable across processes and releases)."""
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "big", signed=True)


def hold_until_commit(conn: Connection, names: Iterable[str]) -> bool:
    """Wait for and take the locks named, until `conn`'s transaction ends.

    Returns True when locks were taken (PostgreSQL), False when the engine needs none (SQLite).
    """
    if conn.dialect.name != "postgresql":
        return False
    keys = sorted({lock_key(n) for n in names})
    if keys:
        conn.execute(_LOCK, {"keys": keys})
    return True
