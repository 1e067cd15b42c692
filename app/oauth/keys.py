"""Registering, listing and revoking the public keys API clients sign their assertions with.

Keys come as a JWKS (``{"keys": [...]}``), the format NHS England's API platform asks for. Only
asymmetric signing keys are accepted: RSA of at least 2048 bits, or EC on P-256, P-384 or P-521.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import jwt
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.errors import Conflict, InvalidInput, NotFound
from app.identity.models import ApiClient
from app.oauth.models import ClientKey

# Asymmetric algorithms only: `none` and the HMAC family are never accepted.
ALGORITHMS: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
}
PUBLIC_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y")}
PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}
MIN_RSA_BITS = 2048
MAX_KID_LENGTH = 200


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(f"The JWKS cannot be registered: {message}.")


def thumbprint(jwk: dict[str, Any]) -> str:
    """The RFC 7638 SHA-256 thumbprint: the same key always gives the same value."""
    members = {name: jwk[name] for name in PUBLIC_MEMBERS[jwk["kty"]]}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()


def _check_key(raw: Any, index: int) -> dict[str, Any]:
    """One JWK made safe to store: its public members, or an error naming what to fix."""
    if not isinstance(raw, dict):
        raise _invalid(f"keys[{index}] is not a JSON object")
    kid = raw.get("kid")
    if not isinstance(kid, str) or not kid.strip() or len(kid) > MAX_KID_LENGTH:
        raise _invalid(f"keys[{index}] needs a `kid` of 1 to {MAX_KID_LENGTH} characters")
    where = f"the key {kid!r}"
    if PRIVATE_MEMBERS & raw.keys():
        raise _invalid(
            f"{where} holds private key material; register the public JWKS only, and keep "
            "the private key on the client"
        )
    kty = raw.get("kty")
    if kty not in PUBLIC_MEMBERS:
        raise _invalid(f"{where} has kty {kty!r}; use an RSA or EC key")
    if raw.get("use", "sig") != "sig":
        raise _invalid(f"{where} has use {raw.get('use')!r}; a signing key has use `sig`")
    alg = raw.get("alg")
    if alg is not None and (alg not in ALGORITHMS or ALGORITHMS[alg][0] != kty):
        allowed = ", ".join(name for name, (family, _) in ALGORITHMS.items() if family == kty)
        raise _invalid(f"{where} has alg {alg!r}; a {kty} key may use {allowed}")
    missing = [name for name in PUBLIC_MEMBERS[kty] if not isinstance(raw.get(name), str)]
    if missing:
        raise _invalid(f"{where} lacks {', '.join(missing)}")
    public = {
        name: raw[name] for name in (*PUBLIC_MEMBERS[kty], "kid", "alg", "use") if name in raw
    }
    _check_key_material(public, where)
    return public


def _check_key_material(jwk: dict[str, Any], where: str) -> None:
    try:
        key = jwt.PyJWK(jwk).key
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
        raise _invalid(f"{where} is not a valid public key") from None
    if jwk["kty"] == "RSA" and getattr(key, "key_size", 0) < MIN_RSA_BITS:
        raise _invalid(f"{where} is shorter than {MIN_RSA_BITS} bits; use a 4096-bit RSA key")
    if jwk["kty"] == "EC" and jwk["crv"] not in {"P-256", "P-384", "P-521"}:
        raise _invalid(f"{where} is on curve {jwk['crv']!r}; use P-256, P-384 or P-521")


def parse_jwks(text: str) -> list[dict[str, Any]]:
    """The public keys of a JWKS document, each checked; refuses the whole set on any problem."""
    try:
        document = json.loads(text)
    except ValueError:
        raise _invalid("the file is not JSON") from None
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list) or not keys:
        raise _invalid('expected a JSON object {"keys": [...]} with at least one key')
    checked = [_check_key(raw, index) for index, raw in enumerate(keys)]
    kids = [key["kid"] for key in checked]
    if len(set(kids)) != len(kids):
        raise _invalid("two keys share a `kid`; each key needs its own")
    return checked


@dataclass
class Registration:
    added: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def get_client_or_raise(session: Session, name: str) -> ApiClient:
    client = session.scalars(select(ApiClient).where(ApiClient.name == name)).first()
    if client is None:
        raise NotFound(f"No API client is called {name!r}.", code="api_client_not_found")
    return client


def list_(session: Session, *, client: ApiClient) -> list[ClientKey]:
    statement = select(ClientKey).where(ClientKey.api_client_id == client.id)
    return list(session.scalars(statement.order_by(ClientKey.created_at, ClientKey.id)))


def register(
    session: Session, *, client: ApiClient, jwks_text: str, now: dt.datetime
) -> Registration:
    """Add a JWKS's new keys to the client. A key already registered under its kid is left as is.

    Re-registering the whole current JWKS after adding a key (rotation) is therefore safe. A kid
    already used for different key material, or revoked, is refused: kids are never reused.
    """
    existing = {key.kid: key for key in list_(session, client=client)}
    registration = Registration()
    for jwk in parse_jwks(jwks_text):
        kid, print_ = jwk["kid"], thumbprint(jwk)
        known = existing.get(kid)
        if known is not None:
            if known.thumbprint != print_:
                raise Conflict(
                    f"The kid {kid!r} is registered with another key; give it a new kid."
                )
            if known.revoked_at is not None:
                raise Conflict(f"The key {kid!r} was revoked; a revoked key cannot return.")
            registration.unchanged.append(kid)
            continue
        session.add(
            ClientKey(
                api_client_id=client.id,
                kid=kid,
                kty=jwk["kty"],
                thumbprint=print_,
                jwk=jwk,
                created_at=now,
            )
        )
        registration.added.append(kid)
    session.flush()
    return registration


def revoke(session: Session, *, client: ApiClient, kid: str, now: dt.datetime) -> ClientKey:
    """Refuse the key's assertions, and the access tokens it earned, from now on."""
    key = session.scalars(
        select(ClientKey).where(ClientKey.api_client_id == client.id, ClientKey.kid == kid)
    ).first()
    if key is None:
        raise NotFound(
            f"{client.name} has no key with kid {kid!r}; `exhale oauth key list` shows them.",
            code="client_key_not_found",
        )
    if key.revoked_at is None:
        key.revoked_at = now
    session.flush()
    return key
