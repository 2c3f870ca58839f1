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


def _collations(conn: object, table: str) -> dict[str, str | None]:
    rows = conn.execute(  # type: ignore[attr-defined]
        text(
            "SELECT column_name, collation_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = :t"
        ),
        {"t": table},
    )
    return {name: collation for name, collation in rows}


def test_key_columns_collate_bytewise_on_postgres(pg_url: str) -> None:
    """0011: B-tree keys compare with memcmp, not strcoll; content and non-key columns untouched."""
    engine = make_engine(pg_url)
    try:
        migrate.upgrade(engine)
        with engine.connect() as conn:
            token = _collations(conn, "sp_token")
            assert {token[c] for c in ("res_type", "res_id", "param", "system", "code")} == {"C"}
            ref = _collations(conn, "sp_reference")
            assert ref["target_id"] == ref["target_type"] == "C"
            resource = _collations(conn, "resource")
            assert resource["res_type"] == resource["res_id"] == "C"
            assert resource["content"] is None
    finally:
        engine.dispose()


def test_collation_upgrade_in_place_on_postgres(pg_url: str) -> None:
    """An existing PostgreSQL database at 0010 keeps its rows and index lookups through 0011 and back."""
    engine = make_engine(pg_url)
    try:
        migrate.upgrade(engine, "0010")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO resource (res_type, res_id, version_id, last_updated, deleted, content) "
                    "VALUES ('Patient', 'kept', 1, '2026-01-01 00:00:00', false, '{}')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO sp_string (res_type, res_id, param, norm, exact) "
                    "VALUES ('Patient', 'kept', 'family', 'ébène', 'Ébène')"
                )
            )
        migrate.upgrade(engine)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT res_id FROM resource WHERE res_type = 'Patient'")).scalar_one() == "kept"
            found = conn.execute(
                text("SELECT res_id FROM sp_string WHERE res_type = 'Patient' AND param = 'family' AND norm LIKE 'éb%'")
            ).scalar_one()
            assert found == "kept"
            assert _collations(conn, "sp_string")["norm"] == "C"
        migrate.downgrade(engine, "0010")
        with engine.connect() as conn:
            assert _collations(conn, "sp_string")["norm"] is None
            assert conn.execute(text("SELECT count(*) FROM sp_string")).scalar_one() == 1
    finally:
        engine.dispose()


def test_content_compressed_with_lz4_where_the_server_has_it(pg_url: str) -> None:
    """0012: new content over the TOAST threshold is lz4-compressed and reads back unchanged; a server
    without lz4 keeps pglz; the downgrade returns the column to the server's default."""
    engine = make_engine(pg_url)
    try:
        migrate.upgrade(engine)
        big = '{"resourceType": "Patient", "text": "' + "care plan review " * 400 + '"}'
        with engine.begin() as conn:
            has_lz4 = conn.execute(
                text("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
            ).scalar()
            conn.execute(
                text(
                    "INSERT INTO resource (res_type, res_id, version_id, last_updated, deleted, content) "
                    "VALUES ('Patient', 'big', 1, '2026-01-01 00:00:00', false, :c)"
                ),
                {"c": big},
            )
        with engine.connect() as conn:
            content, method = conn.execute(
                text("SELECT content, pg_column_compression(content) FROM resource WHERE res_id = 'big'")
            ).one()
        assert content == big
        assert method == ("lz4" if has_lz4 else "pglz")
        migrate.downgrade(engine, "0011")
        with engine.connect() as conn:
            setting = conn.execute(
                text(
                    "SELECT attcompression FROM pg_attribute"
                    " WHERE attrelid = 'resource'::regclass AND attname = 'content'"
                )
            ).scalar_one()
            assert setting in ("", "\x00")
            assert conn.execute(text("SELECT content FROM resource WHERE res_id = 'big'")).scalar_one() == big
    finally:
        engine.dispose()
