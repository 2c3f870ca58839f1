"""Migrations: an empty database upgraded to head matches `schema.metadata`, on both engines,
and an existing database at an older revision upgrades in place without losing data."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text

from gateway.store import migrate
from gateway.store.engine import make_engine
from gateway.store.schema import metadata


def _diff(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        assert migrate.is_current(engine)
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": False})
            return list(compare_metadata(ctx, metadata))
    finally:
        engine.dispose()


def test_head_matches_metadata_on_sqlite(tmp_path: object) -> None:
    assert _diff(f"sqlite:///{tmp_path}/m.db") == []


def test_head_matches_metadata_on_postgres(pg_url: str) -> None:
    assert _diff(pg_url) == []


def test_upgrade_in_place_keeps_data(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/old.db"
    engine = make_engine(url)
    migrate.upgrade(engine, "0001")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO resource (res_type, res_id, version_id, last_updated, deleted, content) "
                "VALUES ('Patient', 'kept', 1, '2026-01-01 00:00:00', 0, '{}')"
            )
        )
    migrate.upgrade(engine)
    assert migrate.is_current(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT res_id FROM resource")).scalar_one() == "kept"
    engine.dispose()
    create_engine(url).dispose()
