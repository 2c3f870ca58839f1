"""Auth clients (SMART Backend Services client registry).

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_client",
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("organization", sa.String(128), nullable=False),
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("auth_method", sa.String(32), nullable=False),
        sa.Column("jwks", sa.Text, nullable=True),
        sa.Column("jwks_url", sa.String(1024), nullable=True),
        sa.Column("secret_hash", sa.String(256), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("client_id", name="pk_auth_client"),
    )
    op.create_index("ix_auth_client_organization", "auth_client", ["organization"])


def downgrade() -> None:
    op.drop_index("ix_auth_client_organization", table_name="auth_client")
    op.drop_table("auth_client")
