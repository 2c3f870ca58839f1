"""Reads by key on PostgreSQL that stay index probes whatever the planner's statistics say.

PostgreSQL plans `res_type = 'Encounter' AND res_id = ANY(…)` from its statistics of that type. On a
database analysed before any Encounter existed (a fresh deployment; autovacuum off, or not round
yet) it takes the type for one row and walks every row of the type through (res_type, last_updated),
the ids a mere filter: the alert pipeline's screen read ~11,000–18,000 buffers per batch (10–20 ms
of server CPU) once 1,500 Encounters were in, and the other reads by id of a batch ~500 each.

Here every key value comes in through `unnest`, so the planner knows none of them and estimates
each equality from the column's count of distinct values: the index on the whole key, one probe
per key, always wins, in custom and generic (prepared) plans alike. Each key's row is a LATERAL
subquery (OFFSET 0 keeps it a parameterised probe, not pulled up into a join). Statements go
straight to the driver (SQLAlchemy's handling of an expanding list cost more than these queries).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg.rows import namedtuple_row
from sqlalchemy import Connection

from gateway.store.schema import resource, resource_version, sp_reference, sp_token

_KEYS = "unnest(CAST(%(types)s AS varchar[]), CAST(%(ids)s AS varchar[])) AS k(t, id)"

RESOURCE_ROWS_SQL = (
    f"SELECT r.res_type, r.res_id, r.version_id, r.last_updated, r.deleted, r.content FROM {_KEYS} "
    f"CROSS JOIN LATERAL (SELECT res_type, res_id, version_id, last_updated, deleted, content "
    f"FROM {resource.name} WHERE res_type = k.t AND res_id = k.id OFFSET 0) AS r"
)

# A version's content is in `resource_version` once superseded, in `resource` while current.
VERSION_ROWS_SQL = (
    f"SELECT x.* FROM unnest(CAST(%(types)s AS varchar[]), CAST(%(ids)s AS varchar[]), "
    f"CAST(%(versions)s AS integer[])) AS k(t, id, vid) "
    f"CROSS JOIN LATERAL (SELECT v.seq, v.res_type, v.res_id, v.version_id, v.last_updated, v.method, v.deleted, "
    f"coalesce(v.content, r.content) AS content FROM {resource_version.name} AS v "
    f"LEFT JOIN {resource.name} AS r "
    f"ON r.res_type = v.res_type AND r.res_id = v.res_id AND r.version_id = v.version_id "
    f"WHERE v.res_type = k.t AND v.res_id = k.id AND v.version_id = k.vid OFFSET 0) AS x"
)

# By the target: `ix_sp_reference_lookup` (res_type, param, target_id, target_type) or
# `ix_sp_reference_target` (target_type, target_id), never the owner's (res_type, res_id) index.
_REFERRING_SQL = (
    f"SELECT DISTINCT s.res_id FROM unnest(CAST(%(types)s AS varchar[]), CAST(%(params)s AS varchar[]), "
    f"CAST(%(target_types)s AS varchar[]), CAST(%(target_ids)s AS varchar[])) AS k(t, p, tt, tid) "
    f"CROSS JOIN LATERAL (SELECT res_id FROM {sp_reference.name} "
    f"WHERE res_type = k.t AND param = k.p AND target_id = k.tid AND target_type = k.tt OFFSET 0) AS s"
)

# The type and parameter come in through `unnest` too: written into the statement, a type the
# statistics have not seen ('Encounter' analysed before the first visit) is taken for one row, and
# the owner index (res_type, res_id) with the code a filter walks every token of the type.
_TOKEN_ROWS_SQL = (
    f"SELECT s.res_id, s.system, s.code FROM unnest(CAST(%(types)s AS varchar[]), CAST(%(params)s AS varchar[]), "
    f"CAST(%(codes)s AS varchar[])) AS k(t, p, code) "
    f"CROSS JOIN LATERAL (SELECT res_id, system, code FROM {sp_token.name} "
    f"WHERE res_type = k.t AND param = k.p AND code = k.code OFFSET 0) AS s"
)

# The resources (current versions) whose reference `p` points at one of the targets: the referring
# probe above, then each referrer's row by key, in one statement (a referrer twice: once per target).
REFERRERS_SQL = (
    f"SELECT r.res_type, r.res_id, r.version_id, r.last_updated, r.deleted, r.content FROM unnest("
    f"CAST(%(types)s AS varchar[]), CAST(%(params)s AS varchar[]), CAST(%(target_types)s AS varchar[]), "
    f"CAST(%(target_ids)s AS varchar[])) AS k(t, p, tt, tid) "
    f"CROSS JOIN LATERAL (SELECT res_id FROM {sp_reference.name} "
    f"WHERE res_type = k.t AND param = k.p AND target_id = k.tid AND target_type = k.tt OFFSET 0) AS s "
    f"CROSS JOIN LATERAL (SELECT res_type, res_id, version_id, last_updated, deleted, content "
    f"FROM {resource.name} WHERE res_type = k.t AND res_id = s.res_id OFFSET 0) AS r"
)


def pg_rows(conn: Connection, sql: str, params: dict[str, Any], *, prepare: bool | None = None) -> list[Any]:
    """Rows (named tuples) of a read straight through psycopg, in `conn`'s transaction
    (`prepare=False`: never server-prepared, planned afresh each call)."""
    raw = conn.connection.driver_connection
    assert raw is not None
    with raw.cursor(row_factory=namedtuple_row) as cur:
        cur.execute(sql, params, prepare=prepare)
        return cur.fetchall()


def pg_rows_together(conn: Connection, reads: Sequence[tuple[str, dict[str, Any]]]) -> list[list[Any]]:
    """`pg_rows` of several independent reads in ONE round trip (a psycopg pipeline): on an autocommit
    connection, or in a transaction already begun (a first statement's BEGIN takes a round trip of
    its own in a pipeline too)."""
    raw = conn.connection.driver_connection
    assert raw is not None
    cursors = [raw.cursor(row_factory=namedtuple_row) for _ in reads]
    try:
        with raw.pipeline():
            for cur, (sql, params) in zip(cursors, reads, strict=True):
                cur.execute(sql, params)
            return [cur.fetchall() for cur in cursors]
    finally:
        for cur in cursors:
            cur.close()


def key_params(refs: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """`types` and `ids` for `_KEYS`, from (type, id) pairs."""
    return {"types": [t for t, _ in refs], "ids": [i for _, i in refs]}


def resource_rows(conn: Connection, refs: Sequence[tuple[str, str]]) -> list[Any]:
    """The `resource` rows (current versions, tombstones included) of these (type, id) pairs."""
    return pg_rows(conn, RESOURCE_ROWS_SQL, key_params(refs)) if refs else []


def version_rows(conn: Connection, keys: Sequence[tuple[str, str, int]]) -> list[Any]:
    """The history rows of these (type, id, version) keys, each with its content (unknown ones left out)."""
    if not keys:
        return []
    return pg_rows(conn, VERSION_ROWS_SQL, version_params(keys))


def version_params(keys: Sequence[tuple[str, str, int]]) -> dict[str, Any]:
    """`types`, `ids` and `versions` for `VERSION_ROWS_SQL`, from (type, id, version) keys."""
    return {"types": [t for t, _, _ in keys], "ids": [i for _, i, _ in keys], "versions": [v for _, _, v in keys]}


def referring_params(rtype: str, param: str, target_type: str, target_ids: Sequence[str]) -> dict[str, Any]:
    """The parameters of `_REFERRING_SQL` and `REFERRERS_SQL`."""
    n = len(target_ids)
    return {"types": [rtype] * n, "params": [param] * n, "target_types": [target_type] * n, "target_ids": target_ids}


def referring_ids(conn: Connection, rtype: str, param: str, target_type: str, target_ids: Sequence[str]) -> list[str]:
    """Ids of the `rtype` resources whose `param` reference points at one of these targets."""
    if not target_ids:
        return []
    return [
        row.res_id for row in pg_rows(conn, _REFERRING_SQL, referring_params(rtype, param, target_type, target_ids))
    ]


def token_rows(conn: Connection, rtype: str, param: str, codes: Sequence[str]) -> list[Any]:
    """(res_id, system, code) of the `param` token index rows of `rtype` with one of `codes`.

    Never server-prepared: the intake calls it on every transaction from the first message on, and a
    generic plan built while the tables were nearly empty stays cached (no ANALYZE invalidates it with
    autovacuum off) as they grow; a collation-only ingest once ran seven times the CPU per row on such
    a plan. Planning costs ~0.1 ms a call."""
    if not codes:
        return []
    params = {"types": [rtype] * len(codes), "params": [param] * len(codes), "codes": list(codes)}
    return pg_rows(conn, _TOKEN_ROWS_SQL, params, prepare=False)
