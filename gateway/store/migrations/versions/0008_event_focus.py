"""Index subscription events by focus version (stable event numbers on redelivery).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_subscription_event_focus",
        "subscription_event",
        ["sub_id", "focus_type", "focus_id", "focus_version"],
    )


def downgrade() -> None:
    op.drop_index("ix_subscription_event_focus", table_name="subscription_event")
