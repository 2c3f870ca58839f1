"""PostgreSQL COPY of buffered rows: a row lacking one of the first row's columns sends NULL for it;
COPY data formatted ahead (`format_pending`) stores the same rows as data formatted while sending."""

from __future__ import annotations

import threading

from sqlalchemy import select

from gateway.store.api import Store
from gateway.store.schema import sp_number, sp_string


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


def _string_rows(prefix: str, n: int) -> list[dict[str, object]]:
    # Text COPY escapes: tab, newline, carriage return, backslash; and non-ASCII.
    awkward = ["plain", "tab\there", "new\nline", "cr\rhere", "back\\slash \\N", "accent é ✓ 😀"]
    return [
        {
            "res_type": "Patient",
            "res_id": f"{prefix}{i}",
            "param": "name",
            "norm": awkward[i % len(awkward)].lower(),
            "exact": awkward[i % len(awkward)],
        }
        for i in range(n)
    ]


def test_copy_data_formatted_ahead_is_sent_as_formatted(pg_store: Store) -> None:
    with pg_store.writer() as uow:
        uow._queue(sp_string, _string_rows("a", 60))
        uow._queue(
            sp_number, [{"res_type": "Observation", "res_id": f"n{i}", "param": "v", "value": i} for i in range(3)]
        )
        uow.format_pending()  # sp_string formatted; sp_number too few rows for a COPY
        # The flush runs in another thread, as the bulk intake's commit does.
        flusher = threading.Thread(target=uow.flush)
        flusher.start()
        flusher.join()
    with pg_store.writer() as uow:
        uow._queue(sp_string, _string_rows("b", 60))
        uow.format_pending()
        uow._queue(sp_string, _string_rows("c", 1))  # buffered after: the formatted data no longer covers all
        uow.flush()
    with pg_store.reader() as uow:
        got = {r.res_id: (r.norm, r.exact) for r in uow.conn.execute(select(sp_string))}
        numbers = {r.res_id for r in uow.conn.execute(select(sp_number))}
    expected = {
        str(r["res_id"]): (r["norm"], r["exact"])
        for p, n in (("a", 60), ("b", 60), ("c", 1))
        for r in _string_rows(p, n)
    }
    assert got == expected
    assert numbers == {"n0", "n1", "n2"}
