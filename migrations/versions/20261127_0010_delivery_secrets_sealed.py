"""The services' webhook signing secrets sealed at rest with EXHALE_DELIVERY__SEALING_KEYS.

Existing secrets are sealed with the first key the settings hold when this runs, so set the
production key before migrating. Downgrading opens them again.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 01:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from app.config import load_settings
from referral.delivery.sealing import Sealer

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_secrets = sa.table(
    "delivery_secret", sa.column("id"), sa.column("secret"), sa.column("sealed_secret")
)


def _move(source: str, target: str, length: int, change: str) -> None:
    """Copy every secret from ``source`` to a new ``target`` column, sealed or opened."""
    with op.batch_alter_table("delivery_secret") as batch:
        batch.add_column(sa.Column(target, sa.String(length=length), nullable=True))
    bind = op.get_bind()
    rows = bind.execute(sa.select(_secrets.c.id, _secrets.c[source])).all()
    if rows:
        sealer = Sealer.from_settings(load_settings().delivery)
        step = sealer.seal if change == "seal" else sealer.open
        for row_id, value in rows:
            bind.execute(
                _secrets.update().where(_secrets.c.id == row_id).values({target: step(value)})
            )
    with op.batch_alter_table("delivery_secret") as batch:
        batch.alter_column(target, existing_type=sa.String(length=length), nullable=False)
        batch.drop_column(source)


def upgrade() -> None:
    _move("secret", "sealed_secret", 512, "seal")


def downgrade() -> None:
    _move("sealed_secret", "secret", 100, "open")
