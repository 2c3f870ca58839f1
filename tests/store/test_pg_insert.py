"""`pg_insert` (the PostgreSQL flush's driver-level INSERT for small batches) stores what
SQLAlchemy's own INSERT stores, column type by column type, and leaves rows that need a client-side
default, or that lack a column, to SQLAlchemy."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    select,
)
from sqlalchemy.exc import DBAPIError

from gateway.fhir.errors import FhirError
from gateway.store.api import Store, pg_insert

metadata = MetaData()
sample = Table(
    "sample",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(16), nullable=True),
    Column("at", DateTime, nullable=False),
    Column("flag", Boolean, nullable=False),
    Column("raw", LargeBinary, nullable=True),
    Column("body", Text, nullable=True),
    Column("tries", Integer, nullable=False, default=0),
)

ROWS = [
    {
        "name": "a",
        "at": datetime(2026, 1, 2, 3, 4, 5),
        "flag": True,
        "raw": b"\x00\x01",
        "body": '{"a": "é"}',
        "tries": 2,
    },
    {"name": None, "at": datetime(2026, 1, 2, 3, 4, 5, 600), "flag": 0, "raw": None, "body": None, "tries": 0},
]


def stored(url: str, insert: str) -> list[tuple[object, ...]]:
    engine = create_engine(url)
    metadata.drop_all(engine)
    metadata.create_all(engine)
    try:
        with engine.begin() as conn:
            if insert == "driver":
                pg_insert(conn, sample, [dict(r) for r in ROWS])
            else:
                conn.execute(sample.insert(), [dict(r) for r in ROWS])
        with engine.connect() as conn:
            typed = [tuple(r)[1:] for r in conn.execute(select(sample).order_by(sample.c.id))]
            text = [
                tuple(r)
                for r in conn.exec_driver_sql("SELECT name, at, flag, raw, body, tries FROM sample ORDER BY id")
            ]
        return typed + text
    finally:
        metadata.drop_all(engine)
        engine.dispose()


def test_the_same_rows_as_sqlalchemys_insert(pg_url: str) -> None:
    assert stored(pg_url, "driver") == stored(pg_url, "sqlalchemy")


def test_a_left_out_column_with_a_default_or_a_row_lacking_a_column_goes_through_sqlalchemy(pg_url: str) -> None:
    engine = create_engine(pg_url)
    metadata.create_all(engine)
    try:
        with engine.begin() as conn:
            pg_insert(conn, sample, [{"name": "b", "at": datetime(2026, 1, 1), "flag": True}])
            pg_insert(
                conn,
                sample,
                [
                    {"name": "c", "at": datetime(2026, 1, 1), "flag": True, "raw": None, "body": "x", "tries": 1},
                    {"name": "d", "at": datetime(2026, 1, 1), "flag": False, "raw": None, "tries": 1, "body": None},
                ],
            )
        with engine.connect() as conn:
            rows = conn.execute(select(sample.c.name, sample.c.tries, sample.c.flag).order_by(sample.c.id)).all()
        assert [tuple(r) for r in rows] == [("b", 0, True), ("c", 1, True), ("d", 1, False)]
    finally:
        metadata.drop_all(engine)
        engine.dispose()


def test_a_duplicate_key_is_still_a_conflict(pg_store: Store) -> None:
    """The flush's driver-level inserts (one pipeline for every table) raise what SQLAlchemy's did:
    a create under an id taken meanwhile is a 409 the writers retry on, and nothing of it is kept."""
    pg_store.create({"resourceType": "Flag", "status": "active"}, rid="dup-1")
    with pytest.raises(FhirError) as err:
        pg_store.create({"resourceType": "Flag", "status": "inactive"}, rid="dup-1")
    assert err.value.status == 409
    with pytest.raises(FhirError) as err, pg_store.writer() as uow:  # many rows: COPY, outside the pipeline
        for i in range(60):
            uow.create({"resourceType": "Flag", "status": "active"}, rid=f"many-{i}")
        uow.create({"resourceType": "Flag", "status": "active"}, rid="dup-1")
    assert err.value.status == 409
    assert pg_store.read("Flag", "dup-1").json()["status"] == "active"
    with pg_store.reader() as uow:
        assert uow.fetch_many([("Flag", "many-0")]) == []


def test_a_flush_writes_every_table_in_one_pipeline_and_reads_see_it(pg_store: Store) -> None:
    with pg_store.writer() as uow:
        stored = uow.create(
            {"resourceType": "Patient", "identifier": [{"system": "urn:x", "value": "1"}], "birthDate": "1950-01-02"}
        )
        assert uow.ids_by_token("Patient", "identifier", "urn:x", "1") == [stored.id]
        assert [r.id for r in uow.fetch_many([("Patient", stored.id)])] == [stored.id]  # flushed, then read
        uow.update({**stored.json(), "gender": "female"})
    assert pg_store.read("Patient", stored.id).version_id == 2


def test_several_rows_go_as_one_statement_and_a_value_too_long_is_refused_not_cut(pg_url: str) -> None:
    """Several rows go out as one `unnest` INSERT; its array parameters are cast without the
    columns' lengths (an explicit CAST to VARCHAR(16) would truncate silently): storing an
    over-long value fails as SQLAlchemy's INSERT does."""
    engine = create_engine(pg_url)
    metadata.create_all(engine)
    too_long = [dict(ROWS[0]), dict(ROWS[1], name="x" * 17)]
    try:
        with pytest.raises(DBAPIError), engine.begin() as conn:
            pg_insert(conn, sample, too_long)
        with pytest.raises(DBAPIError), engine.begin() as conn:
            conn.execute(sample.insert(), too_long)
        with engine.connect() as conn:
            assert conn.execute(select(sample.c.id)).all() == []
    finally:
        metadata.drop_all(engine)
        engine.dispose()


def test_fetch_many_sends_buffered_writes_only_when_it_asks_for_one(pg_store: Store) -> None:
    """A read by key of resources this transaction did not write needs none of its buffered rows
    sent; they go out with the COMMIT (one round trip). Asked for one of them, it sends them first."""
    other = pg_store.create({"resourceType": "Organization", "name": "North"})
    with pg_store.writer() as uow:
        flag = uow.create({"resourceType": "Flag", "status": "active"})
        assert [r.id for r in uow.fetch_many([("Organization", other.id)])] == [other.id]
        assert uow.pipelined()  # still buffered
        assert [r.id for r in uow.fetch_many([("Flag", flag.id), ("Organization", other.id)])] == [flag.id, other.id]
        assert not uow.pipelined()  # sent, to be read back
        uow.create({"resourceType": "Flag", "status": "inactive"}, rid="after")
    assert pg_store.read("Flag", "after").json()["status"] == "inactive"
