"""Alerts and subscriptions: subscription status and the numbered event log.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "subscription_status",
        sa.Column("sub_id", sa.String(64), nullable=False),
        sa.Column("topic", sa.String(512), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("events_since_start", sa.BigInteger, nullable=False),
        sa.Column("last_delivered_event", sa.BigInteger, nullable=False),
        sa.Column("error_count", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("heartbeat_period", sa.Integer, nullable=True),
        sa.Column("next_heartbeat", sa.DateTime, nullable=True),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.PrimaryKeyConstraint("sub_id", name="pk_subscription_status"),
    )
    op.create_index(
        "ix_subscription_status_heartbeat", "subscription_status", ["status", "next_heartbeat"]
    )

    op.create_table(
        "subscription_event",
        sa.Column("sub_id", sa.String(64), nullable=False),
        sa.Column("event_number", sa.BigInteger, nullable=False),
        sa.Column("topic", sa.String(512), nullable=False),
        sa.Column("focus_type", sa.String(64), nullable=False),
        sa.Column("focus_id", sa.String(64), nullable=False),
        sa.Column("focus_version", sa.Integer, nullable=True),
        sa.Column("interaction", sa.String(8), nullable=True),
        sa.Column("context", sa.Text, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("delivered_at", sa.DateTime, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("sub_id", "event_number", name="pk_subscription_event"),
    )
    op.create_index("ix_subscription_event_pending", "subscription_event", ["sub_id", "delivered_at"])
    op.create_index("ix_subscription_event_created", "subscription_event", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_subscription_event_created", table_name="subscription_event")
    op.drop_index("ix_subscription_event_pending", table_name="subscription_event")
    op.drop_table("subscription_event")
    op.drop_index("ix_subscription_status_heartbeat", table_name="subscription_status")
    op.drop_table("subscription_status")
