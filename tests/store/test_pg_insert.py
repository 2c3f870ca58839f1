"""`pg_insert` (the PostgreSQL flush's driver-level INSERT for small batches) stores what
SQLAlchemy's own INSERT stores, column type by column type, and leaves rows that need a client-side
default, or that lack a column, to SQLAlchemy."""

from __future__ import annotations

from datetime import datetime

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

from gateway.store.api import pg_insert

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
