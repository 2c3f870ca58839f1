"""Core store: resources, versions, search index tables, outbox.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _owner() -> list[sa.Column]:
    return [
        sa.Column("res_type", sa.String(64), nullable=False),
        sa.Column("res_id", sa.String(64), nullable=False),
        sa.Column("param", sa.String(64), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "resource",
        sa.Column("res_type", sa.String(64), nullable=False),
        sa.Column("res_id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("last_updated", sa.DateTime, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("content", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("res_type", "res_id", name="pk_resource"),
    )
    op.create_index("ix_resource_type_updated", "resource", ["res_type", "last_updated"])

    op.create_table(
        "resource_version",
        sa.Column("seq", Seq, nullable=False, autoincrement=True),
        sa.Column("res_type", sa.String(64), nullable=False),
        sa.Column("res_id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("last_updated", sa.DateTime, nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("content", sa.Text, nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_resource_version"),
        sa.UniqueConstraint("res_type", "res_id", "version_id", name="uq_resource_version_key"),
    )
    op.create_index("ix_resource_version_updated", "resource_version", ["last_updated"])
    op.create_index("ix_resource_version_type_updated", "resource_version", ["res_type", "last_updated"])

    op.create_table(
        "sp_token",
        *_owner(),
        sa.Column("system", sa.String(512), nullable=True),
        sa.Column("code", sa.String(512), nullable=True),
    )
    op.create_index("ix_sp_token_lookup", "sp_token", ["res_type", "param", "code", "system"])
    op.create_index("ix_sp_token_owner", "sp_token", ["res_type", "res_id"])

    op.create_table(
        "sp_string",
        *_owner(),
        sa.Column("norm", sa.String(512), nullable=False),
        sa.Column("exact", sa.String(512), nullable=False),
    )
    op.create_index("ix_sp_string_lookup", "sp_string", ["res_type", "param", "norm"])
    op.create_index("ix_sp_string_owner", "sp_string", ["res_type", "res_id"])

    op.create_table(
        "sp_date",
        *_owner(),
        sa.Column("low", sa.DateTime, nullable=False),
        sa.Column("high", sa.DateTime, nullable=False),
    )
    op.create_index("ix_sp_date_low", "sp_date", ["res_type", "param", "low"])
    op.create_index("ix_sp_date_high", "sp_date", ["res_type", "param", "high"])
    op.create_index("ix_sp_date_owner", "sp_date", ["res_type", "res_id"])

    op.create_table(
        "sp_reference",
        *_owner(),
        sa.Column("target_type", sa.String(64), nullable=True),
        sa.Column("target_id", sa.String(64), nullable=True),
        sa.Column("url", sa.String(1024), nullable=True),
    )
    op.create_index(
        "ix_sp_reference_lookup", "sp_reference", ["res_type", "param", "target_id", "target_type"]
    )
    op.create_index("ix_sp_reference_target", "sp_reference", ["target_type", "target_id"])
    op.create_index("ix_sp_reference_owner", "sp_reference", ["res_type", "res_id"])

    op.create_table(
        "sp_number",
        *_owner(),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("system", sa.String(512), nullable=True),
        sa.Column("code", sa.String(128), nullable=True),
    )
    op.create_index("ix_sp_number_lookup", "sp_number", ["res_type", "param", "value"])
    op.create_index("ix_sp_number_owner", "sp_number", ["res_type", "res_id"])

    op.create_table(
        "sp_uri",
        *_owner(),
        sa.Column("value", sa.String(1024), nullable=False),
    )
    op.create_index("ix_sp_uri_lookup", "sp_uri", ["res_type", "param", "value"])
    op.create_index("ix_sp_uri_owner", "sp_uri", ["res_type", "res_id"])

    op.create_table(
        "outbox",
        sa.Column("seq", Seq, nullable=False, autoincrement=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("res_type", sa.String(64), nullable=False),
        sa.Column("res_id", sa.String(64), nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        sa.Column("method", sa.String(8), nullable=False),
        sa.Column("dispatched_at", sa.DateTime, nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_outbox"),
    )
    op.create_index("ix_outbox_pending", "outbox", ["dispatched_at", "seq"])

    op.create_table(
        "gateway_meta",
        sa.Column("key", sa.String(128), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_gateway_meta"),
    )


def downgrade() -> None:
    for name in (
        "gateway_meta",
        "outbox",
        "sp_uri",
        "sp_number",
        "sp_reference",
        "sp_date",
        "sp_string",
        "sp_token",
        "resource_version",
        "resource",
    ):
        op.drop_table(name)
