"""Monitors and their results: the registry, and results waiting to be recorded.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 15:14:04.993104
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "monitor",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(length=64), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=64), nullable=True),
        sa.Column("firmware", sa.String(length=32), nullable=True),
        sa.Column("last_calibrated_on", sa.Date(), nullable=True),
        sa.Column("calibration_due_on", sa.Date(), nullable=True),
        sa.Column("last_seen_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["organisation.id"], name=op.f("fk_monitor_unit_id_organisation")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor")),
        sa.UniqueConstraint("serial", name=op.f("uq_monitor_serial")),
    )
    with op.batch_alter_table("monitor", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_monitor_unit_id"), ["unit_id"], unique=False)

    op.create_table(
        "device_reading",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("device_serial", sa.String(length=64), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("co_ppm", sa.Integer(), nullable=False),
        sa.Column("measured_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("battery_percent", sa.Integer(), nullable=True),
        sa.Column("calibration_due_on", sa.Date(), nullable=True),
        sa.Column("api_client_id", sa.Integer(), nullable=True),
        sa.Column("reading_id", sa.Integer(), nullable=True),
        sa.Column("received_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_client_id"],
            ["api_client.id"],
            name=op.f("fk_device_reading_api_client_id_api_client"),
        ),
        sa.ForeignKeyConstraint(
            ["reading_id"],
            ["co_reading.id"],
            name=op.f("fk_device_reading_reading_id_co_reading"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["organisation.id"], name=op.f("fk_device_reading_unit_id_organisation")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_reading")),
        sa.UniqueConstraint(
            "device_serial", "sequence", name=op.f("uq_device_reading_device_serial_sequence")
        ),
        sa.UniqueConstraint("reading_id", name=op.f("uq_device_reading_reading_id")),
    )
    with op.batch_alter_table("device_reading", schema=None) as batch_op:
        batch_op.create_index(
            "ix_device_reading_unit_unassigned",
            ["unit_id", "reading_id", "measured_at"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("device_reading", schema=None) as batch_op:
        batch_op.drop_index("ix_device_reading_unit_unassigned")

    op.drop_table("device_reading")
    with op.batch_alter_table("monitor", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_monitor_unit_id"))

    op.drop_table("monitor")
