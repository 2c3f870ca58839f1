"""PostgreSQL: the store's key columns collate as "C" (bytewise), see `key_text` in schema.py.

Changing a column's collation keeps its type, so PostgreSQL does not rewrite the table; it
rebuilds every index on the altered columns (once per table: all of a table's columns change in
one ALTER TABLE), holding the table's exclusive lock meanwhile. On a large existing database the
upgrade takes about as long as building those indexes afresh. SQLite already compares bytewise and
is left alone.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# (table, [(column, varchar length)]): frozen here, not read from schema.py, so the revision means
# the same thing whatever later revisions change.
_KEY_COLUMNS: list[tuple[str, list[tuple[str, int]]]] = [
    ("resource", [("res_type", 64), ("res_id", 64)]),
    ("resource_version", [("res_type", 64), ("res_id", 64)]),
    ("sp_token", [("res_type", 64), ("res_id", 64), ("param", 64), ("system", 512), ("code", 512)]),
    ("sp_string", [("res_type", 64), ("res_id", 64), ("param", 64), ("norm", 512), ("exact", 512)]),
    ("sp_date", [("res_type", 64), ("res_id", 64), ("param", 64)]),
    (
        "sp_reference",
        [
            ("res_type", 64),
            ("res_id", 64),
            ("param", 64),
            ("target_type", 64),
            ("target_id", 64),
            ("url", 1024),
        ],
    ),
    ("sp_number", [("res_type", 64), ("res_id", 64), ("param", 64), ("system", 512), ("code", 128)]),
    ("sp_uri", [("res_type", 64), ("res_id", 64), ("param", 64), ("value", 1024)]),
]


def _collate(collation: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in _KEY_COLUMNS:
        clauses = ", ".join(
            f'ALTER COLUMN {column} TYPE varchar({length}) COLLATE "{collation}"' for column, length in columns
        )
        op.execute(f"ALTER TABLE {table} {clauses}")


def upgrade() -> None:
    _collate("C")


def downgrade() -> None:
    _collate("default")
