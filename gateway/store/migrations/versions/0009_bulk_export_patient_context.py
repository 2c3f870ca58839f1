"""Bulk Data export jobs, and the patient context of backend clients (SMART `patient/` scopes).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "export_job",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("client_id", sa.String(64), nullable=False),
        sa.Column("access", sa.Text, nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("group_id", sa.String(64), nullable=True),
        sa.Column("request_url", sa.Text, nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("transaction_time", sa.DateTime, nullable=False),
        sa.Column("types_done", sa.Integer, nullable=False),
        sa.Column("types_total", sa.Integer, nullable=False),
        sa.Column("output", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("request_id", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime, nullable=True),
        sa.Column("expires_at", sa.DateTime, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_export_job"),
    )
    op.create_index("ix_export_job_status", "export_job", ["status"])
    op.create_index("ix_export_job_client_id", "export_job", ["client_id"])
    with op.batch_alter_table("auth_client") as batch:
        batch.add_column(sa.Column("patient", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("auth_client") as batch:
        batch.drop_column("patient")
    op.drop_index("ix_export_job_client_id", table_name="export_job")
    op.drop_index("ix_export_job_status", table_name="export_job")
    op.drop_table("export_job")
