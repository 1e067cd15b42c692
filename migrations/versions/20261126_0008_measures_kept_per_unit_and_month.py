"""Measures kept per unit and month: the stored counts, and marks of the writes since.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 18:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import app.db

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "measure_month",
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column(
            "counts",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("computed_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["organisation.id"], name=op.f("fk_measure_month_unit_id_organisation")
        ),
        sa.PrimaryKeyConstraint("unit_id", "month", name=op.f("pk_measure_month")),
    )
    op.create_index("ix_measure_month_month", "measure_month", ["month"], unique=False)
    op.create_table(
        "measure_mark",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_measure_mark")),
    )
    op.create_index(
        "ix_measure_mark_unit_id_month", "measure_mark", ["unit_id", "month"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_measure_mark_unit_id_month", table_name="measure_mark")
    op.drop_table("measure_mark")
    op.drop_index("ix_measure_month_month", table_name="measure_month")
    op.drop_table("measure_month")
