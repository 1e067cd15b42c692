"""Delivered webhook payloads cut to their thin form after a retention period.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 22:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_message") as batch:
        batch.add_column(
            sa.Column("payload_reduced_at", app.db.UTCDateTime(timezone=True), nullable=True)
        )
    op.create_index(
        "ix_outbox_message_status_delivered_at",
        "outbox_message",
        ["status", "delivered_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_message_status_delivered_at", table_name="outbox_message")
    with op.batch_alter_table("outbox_message") as batch:
        batch.drop_column("payload_reduced_at")
