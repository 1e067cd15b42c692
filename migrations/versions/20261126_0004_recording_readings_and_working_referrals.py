"""Recording readings and working referrals.

Readings keep the decision the rules made; one booking and one 36-week contact per pregnancy;
one open referral per pregnancy; idempotency keys; routing by postcode district; postnatal status.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 15:02:58.247140
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import app.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_record",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("caller", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_digest", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column(
            "response_body",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("completed_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_idempotency_record")),
        sa.UniqueConstraint("caller", "key", name=op.f("uq_idempotency_record_caller_key")),
    )
    op.create_table(
        "service_area",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("postcode_district", sa.String(length=4), nullable=False),
        sa.Column("service_id", sa.Integer(), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["organisation.id"],
            name=op.f("fk_service_area_service_id_organisation"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["organisation.id"],
            name=op.f("fk_service_area_unit_id_organisation"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_area")),
        sa.UniqueConstraint(
            "unit_id", "postcode_district", name=op.f("uq_service_area_unit_id_postcode_district")
        ),
    )
    op.create_table(
        "postnatal_status",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pregnancy_id", sa.Integer(), nullable=False),
        sa.Column("recorded_on", sa.Date(), nullable=False),
        sa.Column("smoking_status", sa.String(length=16), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["pregnancy_id"],
            ["pregnancy.id"],
            name=op.f("fk_postnatal_status_pregnancy_id_pregnancy"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_postnatal_status")),
        sa.UniqueConstraint(
            "pregnancy_id", "recorded_on", name=op.f("uq_postnatal_status_pregnancy_id_recorded_on")
        ),
    )
    with op.batch_alter_table("co_reading", schema=None) as batch_op:
        batch_op.add_column(sa.Column("very_brief_advice_given", sa.Boolean(), nullable=True))
        batch_op.add_column(sa.Column("referral_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "advice",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=False,
                server_default="[]",
            )
        )
        batch_op.add_column(sa.Column("policy_version", sa.String(length=32), nullable=True))
        batch_op.create_index(
            batch_op.f("ix_co_reading_referral_id"), ["referral_id"], unique=False
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_co_reading_recorded_by_user_id_source_id"),
            ["recorded_by_user_id", "source_id"],
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_co_reading_referral_id_referral"),
            "referral",
            ["referral_id"],
            ["id"],
            ondelete="SET NULL",
        )

    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.create_index(
            "uq_contact_one_booking_and_36_weeks",
            ["pregnancy_id", "kind"],
            unique=True,
            sqlite_where=sa.text("kind IN ('booking', '36_weeks')"),
            postgresql_where=sa.text("kind IN ('booking', '36_weeks')"),
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_contact_pregnancy_id_kind_occurred_on"),
            ["pregnancy_id", "kind", "occurred_on"],
        )

    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("failed_contact_attempts", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("quit_date", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("last_outcome_stage", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("last_outcome_result", sa.String(length=32), nullable=True))
        batch_op.add_column(
            sa.Column("accepted_at", app.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.create_index(
            "uq_referral_one_open_per_pregnancy",
            ["pregnancy_id"],
            unique=True,
            sqlite_where=sa.text("closed_at IS NULL"),
            postgresql_where=sa.text("closed_at IS NULL"),
        )

    with op.batch_alter_table("referral_event", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("actor_name", sa.String(length=150), nullable=False, server_default="")
        )


def downgrade() -> None:
    with op.batch_alter_table("referral_event", schema=None) as batch_op:
        batch_op.drop_column("actor_name")

    with op.batch_alter_table("referral", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_referral_one_open_per_pregnancy",
            sqlite_where=sa.text("closed_at IS NULL"),
            postgresql_where=sa.text("closed_at IS NULL"),
        )
        batch_op.drop_column("accepted_at")
        batch_op.drop_column("last_outcome_result")
        batch_op.drop_column("last_outcome_stage")
        batch_op.drop_column("quit_date")
        batch_op.drop_column("failed_contact_attempts")

    with op.batch_alter_table("contact", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("uq_contact_pregnancy_id_kind_occurred_on"), type_="unique"
        )
        batch_op.drop_index(
            "uq_contact_one_booking_and_36_weeks",
            sqlite_where=sa.text("kind IN ('booking', '36_weeks')"),
            postgresql_where=sa.text("kind IN ('booking', '36_weeks')"),
        )

    with op.batch_alter_table("co_reading", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_co_reading_referral_id_referral"), type_="foreignkey"
        )
        batch_op.drop_constraint(
            batch_op.f("uq_co_reading_recorded_by_user_id_source_id"), type_="unique"
        )
        batch_op.drop_index(batch_op.f("ix_co_reading_referral_id"))
        batch_op.drop_column("policy_version")
        batch_op.drop_column("advice")
        batch_op.drop_column("referral_id")
        batch_op.drop_column("very_brief_advice_given")

    op.drop_table("postnatal_status")
    op.drop_table("service_area")
    op.drop_table("idempotency_record")
