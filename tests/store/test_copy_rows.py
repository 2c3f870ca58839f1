"""PostgreSQL COPY of buffered rows: a row lacking one of the first row's columns sends NULL for it."""

from __future__ import annotations

from sqlalchemy import select

from gateway.store.api import Store
from gateway.store.schema import sp_number


def test_copy_sends_null_for_a_missing_column(pg_store: Store) -> None:
    base = {"res_type": "Observation", "param": "value-quantity"}
    rows = [
        {**base, "res_id": f"q{i}", "value": float(i), "system": "http://unitsofmeasure.org", "code": "kg"}
        for i in range(60)
    ]
    rows.insert(30, {**base, "res_id": "plain", "value": 7.5})  # a number: no system, no code
    with pg_store.writer() as uow:
        uow._queue(sp_number, rows)
        uow.flush()
    with pg_store.reader() as uow:
        got = {r.res_id: (r.value, r.system, r.code) for r in uow.conn.execute(select(sp_number))}
    assert len(got) == 61
    assert got["plain"] == (7.5, None, None)
    assert got["q3"] == (3.0, "http://unitsofmeasure.org", "kg")
