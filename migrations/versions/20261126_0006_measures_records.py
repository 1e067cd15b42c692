"""Records for the measures: the staff training register and feedback on the stop-smoking service.

Very brief advice, NRT and quit outcomes are already recorded (readings, referral events).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 15:25:08.308949
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "staff_member",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("staff_number", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("started_on", sa.Date(), nullable=True),
        sa.Column("left_on", sa.Date(), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["organisation.id"], name=op.f("fk_staff_member_unit_id_organisation")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_member")),
        sa.UniqueConstraint(
            "unit_id", "staff_number", name=op.f("uq_staff_member_unit_id_staff_number")
        ),
    )
    with op.batch_alter_table("staff_member", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_staff_member_unit_id"), ["unit_id"], unique=False)

    op.create_table(
        "staff_training",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("staff_member_id", sa.Integer(), nullable=False),
        sa.Column("training", sa.String(length=32), nullable=False),
        sa.Column("completed_on", sa.Date(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "expires_on IS NULL OR expires_on > completed_on",
            name=op.f("ck_staff_training_expires_after"),
        ),
        sa.ForeignKeyConstraint(
            ["staff_member_id"],
            ["staff_member.id"],
            name=op.f("fk_staff_training_staff_member_id_staff_member"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_training")),
        sa.UniqueConstraint(
            "staff_member_id",
            "training",
            "completed_on",
            name=op.f("uq_staff_training_staff_member_id_training_completed_on"),
        ),
    )
    with op.batch_alter_table("staff_training", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_staff_training_staff_member_id"), ["staff_member_id"], unique=False
        )

    op.create_table(
        "service_feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("referral_id", sa.Integer(), nullable=True),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "rating BETWEEN 1 AND 5", name=op.f("ck_service_feedback_rating_1_to_5")
        ),
        sa.ForeignKeyConstraint(
            ["referral_id"],
            ["referral.id"],
            name=op.f("fk_service_feedback_referral_id_referral"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["organisation.id"],
            name=op.f("fk_service_feedback_service_id_organisation"),
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["organisation.id"], name=op.f("fk_service_feedback_unit_id_organisation")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_feedback")),
    )
    with op.batch_alter_table("service_feedback", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_service_feedback_referral_id"), ["referral_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_service_feedback_service_id"), ["service_id"], unique=False
        )
        batch_op.create_index(
            "ix_service_feedback_unit_id_received_on", ["unit_id", "received_on"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("service_feedback", schema=None) as batch_op:
        batch_op.drop_index("ix_service_feedback_unit_id_received_on")
        batch_op.drop_index(batch_op.f("ix_service_feedback_service_id"))
        batch_op.drop_index(batch_op.f("ix_service_feedback_referral_id"))

    op.drop_table("service_feedback")
    with op.batch_alter_table("staff_training", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_training_staff_member_id"))

    op.drop_table("staff_training")
    with op.batch_alter_table("staff_member", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_staff_member_unit_id"))

    op.drop_table("staff_member")
