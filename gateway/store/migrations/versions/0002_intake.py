"""Intake receipts, dedupe and quarantine.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Seq = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "intake_receipt",
        sa.Column("id", Seq, nullable=False, autoincrement=True),
        sa.Column("source_id", sa.String(64), nullable=False),
        sa.Column("dedupe_key", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("control_id", sa.String(64), nullable=True),
        sa.Column("received_at", sa.DateTime, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("ack", sa.LargeBinary, nullable=True),
        sa.Column("quarantine_id", sa.BigInteger, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_intake_receipt"),
        sa.UniqueConstraint("source_id", "dedupe_key", name="uq_intake_receipt_key"),
    )
    op.create_index("ix_intake_receipt_received", "intake_receipt", ["received_at"])

    op.create_table(
        "intake_quarantine",
        sa.Column("id", Seq, nullable=False, autoincrement=True),
        sa.Column("source_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("raw", sa.LargeBinary, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("received_at", sa.DateTime, nullable=False),
        sa.Column("replayed_at", sa.DateTime, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_intake_quarantine"),
    )
    op.create_index("ix_intake_quarantine_status", "intake_quarantine", ["status", "received_at"])


def downgrade() -> None:
    op.drop_index("ix_intake_quarantine_status", table_name="intake_quarantine")
    op.drop_table("intake_quarantine")
    op.drop_index("ix_intake_receipt_received", table_name="intake_receipt")
    op.drop_table("intake_receipt")
