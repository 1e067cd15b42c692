"""API clients' registered public keys, the assertions they have used, and issued access tokens."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, JSONType, UTCDateTime, utcnow
from app.identity.models import ApiClient


class ClientKey(Base):
    """One public key (a JWK) an API client signs its assertions with, found by its ``kid``.

    A revoked key stays, so that its ``kid`` cannot be registered again with other key material.
    """

    __tablename__ = "oauth_client_key"
    __table_args__ = (UniqueConstraint("api_client_id", "kid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    api_client_id: Mapped[int] = mapped_column(
        ForeignKey("api_client.id", ondelete="CASCADE"), index=True
    )
    kid: Mapped[str] = mapped_column(String(200))
    kty: Mapped[str] = mapped_column(String(8))
    thumbprint: Mapped[str] = mapped_column(String(64))  # RFC 7638, SHA-256, base64url
    jwk: Mapped[dict[str, Any]] = mapped_column(JSONType)  # public members only
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    api_client: Mapped[ApiClient] = relationship()


class UsedAssertion(Base):
    """A client assertion's ``jti``, kept until the assertion expires so that it cannot be replayed.

    The unique constraint is what refuses a replay, even when two requests race.
    """

    __tablename__ = "oauth_used_assertion"
    __table_args__ = (UniqueConstraint("api_client_id", "jti"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    api_client_id: Mapped[int] = mapped_column(ForeignKey("api_client.id", ondelete="CASCADE"))
    jti: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)


class AccessToken(Base):
    """A short-lived bearer token. Only the SHA-256 digest of the token is stored."""

    __tablename__ = "oauth_access_token"

    token_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    api_client_id: Mapped[int] = mapped_column(
        ForeignKey("api_client.id", ondelete="CASCADE"), index=True
    )
    client_key_id: Mapped[int] = mapped_column(
        ForeignKey("oauth_client_key.id", ondelete="CASCADE"), index=True
    )
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)

    api_client: Mapped[ApiClient] = relationship()
    client_key: Mapped[ClientKey] = relationship()
