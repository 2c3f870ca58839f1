"""PostgreSQL reads by key (`gateway.store.probes`): what they return, and that they stay a probe of the
whole key when the statistics were taken before any row of the type existed (autovacuum is off here,
as on a fresh deployment before its first analyse): the `= ANY(ids)` shape they replace walked every
Encounter through (res_type, last_updated) then, and its cost grew with every Encounter written."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from sqlalchemy import Connection

from gateway.alerts.pipeline import _PG_SUBJECTS_SQL
from gateway.store import probes
from gateway.store.api import Store


def _stale_statistics(conn: Connection) -> None:
    """Analyse with Patients only, then add 300 Encounters (each with a subject) and their Provenance."""
    conn.exec_driver_sql(
        "INSERT INTO resource (res_type, res_id, version_id, last_updated, deleted, content) "
        "SELECT 'Patient', 'p' || g, 1, now(), false, '{}' FROM generate_series(1, 500) g"
    )
    conn.exec_driver_sql(
        "INSERT INTO resource_version (res_type, res_id, version_id, last_updated, method, deleted) "
        "SELECT 'Patient', 'p' || g, 1, now(), 'POST', false FROM generate_series(1, 500) g"
    )
    conn.exec_driver_sql(
        "INSERT INTO sp_reference (res_type, res_id, param, target_type, target_id) "
        "SELECT 'Patient', 'p' || g, p, 'Practitioner', p || g "
        "FROM generate_series(1, 500) g, unnest(ARRAY['general-practitioner', 'organization']) p"
    )
    conn.exec_driver_sql("ANALYZE")
    conn.exec_driver_sql(
        "INSERT INTO resource (res_type, res_id, version_id, last_updated, deleted, content) "
        "SELECT 'Encounter', 'e' || g, 2, now(), false, '{\"v\": 2}' FROM generate_series(1, 300) g"
    )
    conn.exec_driver_sql(
        "INSERT INTO resource_version (res_type, res_id, version_id, last_updated, method, deleted, content) "
        "SELECT 'Encounter', 'e' || g, v, now(), 'PUT', false, CASE v WHEN 1 THEN '{\"v\": 1}' END "
        "FROM generate_series(1, 300) g, generate_series(1, 2) v"
    )
    conn.exec_driver_sql(
        "INSERT INTO sp_reference (res_type, res_id, param, target_type, target_id) "
        "SELECT 'Encounter', 'e' || g, p, 'Patient', 'p' || g "
        "FROM generate_series(1, 300) g, unnest(ARRAY['subject', 'participant']) p"
    )
    conn.exec_driver_sql(
        "INSERT INTO sp_reference (res_type, res_id, param, target_type, target_id) "
        "SELECT 'Provenance', 'prov' || g, 'target', 'Encounter', 'e' || g FROM generate_series(1, 300) g"
    )


def _plan(conn: Connection, sql: str, params: dict[str, Any]) -> str:
    return "\n".join(row[0] for row in probes.pg_rows(conn, "EXPLAIN " + sql, params))


def test_probes_read_by_the_whole_key_whatever_the_statistics(pg_store: Store) -> None:
    with pg_store.writer() as uow:
        _stale_statistics(uow.conn)
        ids = ["e7", "e150", "e299"]
        keys = probes.key_params([("Encounter", i) for i in ids])
        plan = _plan(uow.conn, probes.RESOURCE_ROWS_SQL, keys)
        assert "pk_resource" in plan and "ix_resource_type_updated" not in plan
        versions = {"types": ["Encounter"] * 3, "ids": ids, "versions": [1, 2, 1]}
        assert "uq_resource_version_key" in _plan(uow.conn, probes.VERSION_ROWS_SQL, versions)
        subjects = {"types": ["Encounter"] * 3, "ids": ids, "params": ["subject"] * 3}
        plan = _plan(uow.conn, _PG_SUBJECTS_SQL, subjects)
        assert "ix_sp_reference_owner" in plan and "ix_sp_reference_lookup" not in plan
        referring = {"types": ["Provenance"] * 3, "params": ["target"] * 3, "target_types": ["Encounter"] * 3}
        plan = _plan(uow.conn, probes._REFERRING_SQL, referring | {"target_ids": ids})
        assert "Index Scan" in plan and "ix_sp_reference_owner" not in plan and "Seq Scan" not in plan
        plan = _plan(uow.conn, probes.REFERRERS_SQL, referring | {"target_ids": ids})
        assert "pk_resource" in plan and "ix_sp_reference_owner" not in plan and "Seq Scan" not in plan


def test_probes_return_rows_by_key(pg_store: Store) -> None:
    with pg_store.writer() as uow:
        _stale_statistics(uow.conn)
        uow.conn.exec_driver_sql("UPDATE resource SET deleted = true, content = NULL WHERE res_id = 'e2'")
        rows = probes.resource_rows(uow.conn, [("Encounter", "e1"), ("Encounter", "e2"), ("Encounter", "nope")])
        assert sorted((r.res_id, r.deleted, r.content) for r in rows) == [("e1", False, '{"v": 2}'), ("e2", True, None)]
        rows = probes.version_rows(uow.conn, [("Encounter", "e1", 1), ("Encounter", "e1", 2), ("Encounter", "e1", 3)])
        assert sorted((r.version_id, r.content) for r in rows) == [(1, '{"v": 1}'), (2, '{"v": 2}')]
        assert sorted(probes.referring_ids(uow.conn, "Provenance", "target", "Encounter", ["e1", "e5", "x"])) == [
            "prov1",
            "prov5",
        ]
        assert probes.resource_rows(uow.conn, []) == [] and probes.referring_ids(uow.conn, "P", "t", "E", []) == []
        uow.conn.exec_driver_sql(
            "INSERT INTO resource (res_type, res_id, version_id, last_updated, deleted, content) "
            "VALUES ('Provenance', 'prov1', 1, now(), false, '{\"id\": \"prov1\"}')"
        )
        params = probes.referring_params("Provenance", "target", "Encounter", ["e1", "e5", "x"])
        rows = probes.pg_rows(uow.conn, probes.REFERRERS_SQL, params)  # prov5 is only index rows here
        assert [(r.res_type, r.res_id, r.content) for r in rows] == [("Provenance", "prov1", '{"id": "prov1"}')]


def test_token_probe_stays_on_the_lookup_index_for_a_type_analysed_before_it_existed(pg_store: Store) -> None:
    """The intake's identifier lookup (`token_rows`) for Encounters when the statistics know only Patients:
    with the type written into the statement the planner took 'Encounter' for one row and walked every
    Encounter token through the owner index (res_type, res_id), the code a filter: 28 ms a call in the
    alert bench once 1,500 Encounters were in."""
    with pg_store.writer() as uow:
        conn = uow.conn
        conn.exec_driver_sql(
            "INSERT INTO sp_token (res_type, res_id, param, system, code) "
            "SELECT 'Patient', 'p' || g, p, NULL, p || g "
            "FROM generate_series(1, 2000) g, unnest(ARRAY['identifier', 'gender', 'active']) p"
        )
        conn.exec_driver_sql("ANALYZE sp_token")
        conn.exec_driver_sql(
            "INSERT INTO sp_token (res_type, res_id, param, system, code) "
            "SELECT 'Encounter', 'e' || g, p, 'urn:visit', p || g "
            "FROM generate_series(1, 3000) g, unnest(ARRAY['identifier', '_tag', 'class']) p"
        )
        params = {"types": ["Encounter"] * 2, "params": ["identifier"] * 2, "codes": ["identifier7", "nope"]}
        plan = _plan(conn, probes._TOKEN_ROWS_SQL, params)
        assert "ix_sp_token_lookup" in plan and "ix_sp_token_owner" not in plan, plan
        rows = probes.token_rows(conn, "Encounter", "identifier", ["identifier7", "identifier9", "nope"])
        assert sorted((r.res_id, r.system, r.code) for r in rows) == [
            ("e7", "urn:visit", "identifier7"),
            ("e9", "urn:visit", "identifier9"),
        ]
        assert probes.token_rows(conn, "Encounter", "identifier", []) == []


def test_reads_together_answer_each_read_in_order(pg_store: Store) -> None:
    """Independent reads sent in one round trip (the alert screen's two) come back as if sent apart;
    a failing one raises."""
    with pg_store.writer() as uow:
        _stale_statistics(uow.conn)
    with pg_store.reader(autocommit=True) as uow:
        versions, nothing, referring = probes.pg_rows_together(
            uow.conn,
            [
                (probes.RESOURCE_ROWS_SQL, probes.key_params([("Encounter", "e3"), ("Patient", "p9")])),
                (probes.RESOURCE_ROWS_SQL, probes.key_params([("Encounter", "nope")])),
                ("SELECT count(*) AS n FROM resource WHERE res_type = %(t)s", {"t": "Encounter"}),
            ],
        )
        assert sorted((r.res_type, r.res_id, r.version_id) for r in versions) == [
            ("Encounter", "e3", 2),
            ("Patient", "p9", 1),
        ]
        assert nothing == [] and referring[0].n == 300
        with pytest.raises(psycopg.Error):
            probes.pg_rows_together(uow.conn, [(probes.RESOURCE_ROWS_SQL, probes.key_params([])), ("SELECT 1/0", {})])
        assert probes.resource_rows(uow.conn, [("Encounter", "e1")])[0].res_id == "e1"  # the connection goes on
