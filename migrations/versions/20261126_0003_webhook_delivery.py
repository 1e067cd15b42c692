"""Webhook delivery: each stop-smoking service's destination and signing secrets, and the delivery
state of outbox messages (retry window, last HTTP status, dead-letter and redelivery times).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 15:01:02.939968
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "delivery_destination",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("payload_mode", sa.String(length=8), nullable=False),
        sa.Column("is_active", sa.Boolean(), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["organisation.id"],
            name=op.f("fk_delivery_destination_service_id_organisation"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_destination")),
        sa.UniqueConstraint("service_id", name=op.f("uq_delivery_destination_service_id")),
    )
    op.create_table(
        "delivery_secret",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["organisation.id"],
            name=op.f("fk_delivery_secret_service_id_organisation"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_secret")),
    )
    with op.batch_alter_table("delivery_secret", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_delivery_secret_service_id"), ["service_id"], unique=False
        )

    op.create_table(
        "outbox_delivery_state",
        sa.Column("outbox_message_id", sa.Integer(), nullable=False),
        sa.Column("window_started_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("window_attempts", sa.Integer(), nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("failed_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("redelivered_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("redelivery_count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["outbox_message_id"],
            ["outbox_message.id"],
            name=op.f("fk_outbox_delivery_state_outbox_message_id_outbox_message"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("outbox_message_id", name=op.f("pk_outbox_delivery_state")),
    )


def downgrade() -> None:
    op.drop_table("outbox_delivery_state")
    with op.batch_alter_table("delivery_secret", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_secret_service_id"))

    op.drop_table("delivery_secret")
    op.drop_table("delivery_destination")
