"""PostgreSQL's identifier probe is planned afresh each call: a generic plan built while the tables
were empty scans every token of the type per code and stays cached as they grow (no statistics
here: autovacuum is off), which made a collation-only ingest run seven times the CPU per row."""

from __future__ import annotations

from sqlalchemy import text

from gateway.store.api import Store, token_rows
from gateway.store.schema import sp_token


def test_probe_is_never_server_prepared(pg_store: Store) -> None:
    with pg_store.writer() as uow:
        for i in range(12):  # psycopg prepares a statement on its 5th execution, PostgreSQL goes generic on its 6th
            assert list(token_rows(uow.conn, "Patient", "identifier", [f"n{i}"])) == []
        uow.conn.execute(
            sp_token.insert(),
            [{"res_type": "Patient", "res_id": "p1", "param": "identifier", "system": "urn:s", "code": "n3"}],
        )
        rows = list(token_rows(uow.conn, "Patient", "identifier", ["n3", "n4"]))
        assert [(r.res_id, r.system, r.code) for r in rows] == [("p1", "urn:s", "n3")]
        prepared = uow.conn.execute(
            text("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%LATERAL%'")
        ).scalar_one()
        assert prepared == 0
