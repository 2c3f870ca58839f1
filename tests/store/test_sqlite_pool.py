"""SQLite's pool hands out the connection returned last, so a writer keeps its page cache warm: a
SQLite connection drops its whole cache when another connection wrote since its last transaction."""

from __future__ import annotations

from pathlib import Path

from gateway.store.engine import make_engine


def test_consecutive_writers_get_the_same_connection_though_a_reader_ran_inside(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'pool.db'}")
    try:
        seen = []
        for _ in range(3):
            with engine.connect() as writer, writer.begin():
                seen.append(writer.connection.dbapi_connection)
                with engine.connect() as reader, reader.begin():  # a second connection, used meanwhile
                    assert reader.connection.dbapi_connection is not seen[-1]
        assert seen[0] is seen[1] is seen[2]
    finally:
        engine.dispose()
