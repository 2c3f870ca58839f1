"""`sqlite_insert` (the SQLite flush's driver-level INSERT) stores what SQLAlchemy's own INSERT
stores, column type by column type, and leaves rows that need a client-side default to SQLAlchemy."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Boolean, Column, DateTime, Integer, LargeBinary, MetaData, String, Table, create_engine, select

from gateway.store.api import _fast_datetime, sqlite_insert

metadata = MetaData()
sample = Table(
    "sample",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(16), nullable=True),
    Column("at", DateTime, nullable=False),
    Column("flag", Boolean, nullable=False),
    Column("raw", LargeBinary, nullable=True),
    Column("tries", Integer, nullable=False, default=0),
)

ROWS = [
    {"name": "a", "at": datetime(2026, 1, 2, 3, 4, 5), "flag": True, "raw": b"\x00\x01", "tries": 2},
    {"name": None, "at": datetime(2026, 1, 2, 3, 4, 5, 600), "flag": False, "raw": None, "tries": 0},
]


def stored(path: Path, insert: str) -> list[tuple[object, ...]]:
    engine = create_engine(f"sqlite:///{path}")
    metadata.create_all(engine)
    with engine.begin() as conn:
        if insert == "driver":
            sqlite_insert(conn, sample, [dict(r) for r in ROWS])
        else:
            conn.execute(sample.insert(), [dict(r) for r in ROWS])
    with engine.connect() as conn:
        typed = [tuple(r) for r in conn.execute(select(sample).order_by(sample.c.id))]
        text = [tuple(r) for r in conn.exec_driver_sql("SELECT name, at, flag, raw, tries FROM sample ORDER BY id")]
    engine.dispose()
    return typed + text


def test_the_same_rows_as_sqlalchemys_insert(tmp_path: Path) -> None:
    assert stored(tmp_path / "driver.db", "driver") == stored(tmp_path / "sqlalchemy.db", "sqlalchemy")


def test_a_left_out_column_with_a_default_goes_through_sqlalchemy(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    metadata.create_all(engine)
    with engine.begin() as conn:
        sqlite_insert(conn, sample, [{"name": "b", "at": datetime(2026, 1, 1), "flag": True}])
    with engine.connect() as conn:
        assert conn.execute(select(sample.c.tries)).scalar_one() == 0
    engine.dispose()


def test_the_fast_datetime_text_is_sqlalchemys_for_every_value() -> None:
    """The driver path formats naive datetimes itself (`isoformat`): exactly SQLite DATETIME's
    own text, and anything else (aware datetimes, dates, None) through SQLAlchemy's processor."""
    dialect = create_engine("sqlite://").dialect
    slow = DateTime().dialect_impl(dialect).bind_processor(dialect)
    assert slow is not None
    fast = _fast_datetime(slow)
    assert fast is not slow  # the fast path is in use
    rng = random.Random(5)
    values: list[object] = [None, date(2026, 2, 3), datetime(2026, 2, 3, 4, 5, 6, 7, tzinfo=UTC)]
    values += [datetime.min, datetime.max, datetime(2026, 1, 1), datetime(999, 1, 1, 0, 0, 0, 1)]
    span = (datetime.max - datetime.min) // timedelta(microseconds=1)
    values += [datetime.min + timedelta(microseconds=rng.randrange(span)) for _ in range(2000)]
    for value in values:
        assert fast(value) == slow(value), value
    with pytest.raises(TypeError):
        fast("2026-01-01")
