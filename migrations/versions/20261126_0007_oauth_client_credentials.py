"""Signed-JWT client credentials: clients' public keys, used assertion ids, access tokens.

A client's registered keys verify its signed assertions (RFC 7523); each assertion's jti is kept
until it expires so that it cannot be replayed; access tokens are kept as SHA-256 digests.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 17:35:55.462217
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import app.db

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "oauth_client_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("api_client_id", sa.Integer(), nullable=False),
        sa.Column("kid", sa.String(length=200), nullable=False),
        sa.Column("kty", sa.String(length=8), nullable=False),
        sa.Column("thumbprint", sa.String(length=64), nullable=False),
        sa.Column(
            "jwk",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["api_client_id"],
            ["api_client.id"],
            name=op.f("fk_oauth_client_key_api_client_id_api_client"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_client_key")),
        sa.UniqueConstraint(
            "api_client_id", "kid", name=op.f("uq_oauth_client_key_api_client_id_kid")
        ),
    )
    with op.batch_alter_table("oauth_client_key", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_oauth_client_key_api_client_id"), ["api_client_id"], unique=False
        )

    op.create_table(
        "oauth_used_assertion",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("api_client_id", sa.Integer(), nullable=False),
        sa.Column("jti", sa.String(length=255), nullable=False),
        sa.Column("expires_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_client_id"],
            ["api_client.id"],
            name=op.f("fk_oauth_used_assertion_api_client_id_api_client"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_oauth_used_assertion")),
        sa.UniqueConstraint(
            "api_client_id", "jti", name=op.f("uq_oauth_used_assertion_api_client_id_jti")
        ),
    )
    with op.batch_alter_table("oauth_used_assertion", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_oauth_used_assertion_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "oauth_access_token",
        sa.Column("token_digest", sa.String(length=64), nullable=False),
        sa.Column("api_client_id", sa.Integer(), nullable=False),
        sa.Column("client_key_id", sa.Integer(), nullable=False),
        sa.Column("issued_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_client_id"],
            ["api_client.id"],
            name=op.f("fk_oauth_access_token_api_client_id_api_client"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["client_key_id"],
            ["oauth_client_key.id"],
            name=op.f("fk_oauth_access_token_client_key_id_oauth_client_key"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("token_digest", name=op.f("pk_oauth_access_token")),
    )
    with op.batch_alter_table("oauth_access_token", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_oauth_access_token_api_client_id"), ["api_client_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_oauth_access_token_client_key_id"), ["client_key_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_oauth_access_token_expires_at"), ["expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("oauth_access_token", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oauth_access_token_expires_at"))
        batch_op.drop_index(batch_op.f("ix_oauth_access_token_client_key_id"))
        batch_op.drop_index(batch_op.f("ix_oauth_access_token_api_client_id"))

    op.drop_table("oauth_access_token")
    with op.batch_alter_table("oauth_used_assertion", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oauth_used_assertion_expires_at"))

    op.drop_table("oauth_used_assertion")
    with op.batch_alter_table("oauth_client_key", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_oauth_client_key_api_client_id"))

    op.drop_table("oauth_client_key")
