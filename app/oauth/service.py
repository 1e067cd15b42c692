"""The token endpoint's checks, issuing access tokens, and authenticating requests that bear them.

A client proves who it is with a JWT it signed with its registered private key (RFC 7523 section
2.2, as NHS England's API platform uses): ``iss`` and ``sub`` are its client id (the API client's
name), ``aud`` is this token endpoint's URL, ``exp`` at most a few minutes ahead, ``jti`` used once.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

import jwt
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from app.errors import NotAuthenticated
from app.identity.models import ApiClient
from app.identity.principal import Principal
from app.identity.service import digest, principal_for_client
from app.oauth.errors import InvalidClient, InvalidRequest, UnsupportedGrantType
from app.oauth.keys import ALGORITHMS
from app.oauth.models import AccessToken, ClientKey, UsedAssertion
from app.oauth.schemas import MAX_ASSERTION_BYTES

GRANT_TYPE = "client_credentials"
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ACCESS_TOKEN_PREFIX = "exhat_"  # noqa: S105 (tells access tokens from API keys, which start exh_)
MAX_JTI_LENGTH = 255
REQUIRED_CLAIMS = ["iss", "sub", "aud", "exp", "jti"]


@dataclass(frozen=True)
class TokenPolicy:
    audience: str
    max_assertion_lifetime: dt.timedelta
    clock_skew: dt.timedelta
    token_ttl: dt.timedelta


@dataclass(frozen=True)
class TokenRequest:
    grant_type: str | None
    client_assertion_type: str | None
    client_assertion: str | None
    client_id: str | None = None


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in_s: int
    principal: Principal
    kid: str


def issue_token(
    session: Session, *, request: TokenRequest, policy: TokenPolicy, now: dt.datetime
) -> IssuedToken:
    """An access token for a valid assertion, or an :class:`OAuthError` saying what was wrong."""
    assertion = _check_request(request)
    client, key, claims = verify_assertion(session, assertion=assertion, policy=policy, now=now)
    if request.client_id is not None and request.client_id != client.name:
        raise InvalidRequest(
            "client_id differs from the assertion's iss; send the same client id in both, or "
            "leave client_id out.",
            reason="client_id_mismatch",
            client_name=client.name,
        )
    expires_at = dt.datetime.fromtimestamp(int(claims["exp"]), dt.UTC)
    _use_jti(session, client=client, jti=claims["jti"], expires_at=expires_at)
    token = ACCESS_TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(
        AccessToken(
            token_digest=digest(token),
            api_client_id=client.id,
            client_key_id=key.id,
            issued_at=now,
            expires_at=now + policy.token_ttl,
        )
    )
    session.flush()
    return IssuedToken(
        access_token=token,
        expires_in_s=int(policy.token_ttl.total_seconds()),
        principal=principal_for_client(client),
        kid=key.kid,
    )


def _check_request(request: TokenRequest) -> str:
    if not request.grant_type:
        raise InvalidRequest("Send grant_type=client_credentials.", reason="grant_type_missing")
    if request.grant_type != GRANT_TYPE:
        raise UnsupportedGrantType(
            "Only grant_type=client_credentials is supported.", reason="grant_type_unsupported"
        )
    if request.client_assertion_type != ASSERTION_TYPE:
        raise InvalidRequest(
            f"Send client_assertion_type={ASSERTION_TYPE} with a signed JWT as client_assertion.",
            reason="assertion_type_unsupported",
        )
    if not request.client_assertion:
        raise InvalidRequest("Send the signed JWT as client_assertion.", reason="assertion_missing")
    if len(request.client_assertion) > MAX_ASSERTION_BYTES:
        raise InvalidRequest(
            f"client_assertion is longer than {MAX_ASSERTION_BYTES} bytes.",
            reason="assertion_too_long",
        )
    return request.client_assertion


def _header(assertion: str) -> tuple[str, str]:
    """The assertion's ``alg`` and ``kid``, refusing every algorithm that is not asymmetric."""
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.PyJWTError:
        raise InvalidClient(
            "client_assertion is not a signed JWT (header.payload.signature).",
            reason="assertion_malformed",
        ) from None
    alg, kid = header.get("alg"), header.get("kid")
    if not isinstance(alg, str) or alg not in ALGORITHMS:
        raise InvalidClient(
            f"The assertion's alg {alg!r} is not accepted: sign with your registered private "
            f"key using one of {', '.join(ALGORITHMS)}.",
            reason="algorithm_refused",
        )
    if not isinstance(kid, str) or not kid:
        raise InvalidClient(
            "The assertion's header needs the kid of the registered key that signed it.",
            reason="kid_missing",
        )
    return alg, kid


def _claimed_client(session: Session, assertion: str) -> ApiClient:
    try:
        claimed = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.PyJWTError:
        raise InvalidClient(
            "client_assertion's payload is not a JSON object.", reason="assertion_malformed"
        ) from None
    iss = claimed.get("iss")
    if not isinstance(iss, str) or not iss:
        raise InvalidClient("The assertion needs iss: your client id.", reason="iss_missing")
    client = session.scalars(select(ApiClient).where(ApiClient.name == iss)).first()
    if client is None:
        raise InvalidClient(
            "No client is registered with that client id (iss); ask the exhale administrator.",
            reason="client_unknown",
            client_name=iss[:150],
        )
    if client.revoked_at is not None:
        raise InvalidClient(
            "This client has been revoked; ask the exhale administrator.",
            reason="client_revoked",
            client_name=client.name,
        )
    return client


def _registered_key(session: Session, *, client: ApiClient, kid: str, alg: str) -> ClientKey:
    key = session.scalars(
        select(ClientKey).where(ClientKey.api_client_id == client.id, ClientKey.kid == kid)
    ).first()
    if key is None:
        raise InvalidClient(
            f"No key with kid {kid!r} is registered for this client; register its public JWKS "
            "with the exhale administrator first.",
            reason="kid_unknown",
            client_name=client.name,
        )
    if key.revoked_at is not None:
        raise InvalidClient(
            f"The key {kid!r} has been revoked; sign with a current key.",
            reason="key_revoked",
            client_name=client.name,
        )
    family, curve = ALGORITHMS[alg]
    declared = key.jwk.get("alg")
    if key.kty != family or (curve and key.jwk.get("crv") != curve) or declared not in (None, alg):
        raise InvalidClient(
            f"The key {kid!r} cannot verify alg {alg}; sign with the algorithm that suits it.",
            reason="key_algorithm_mismatch",
            client_name=client.name,
        )
    return key


_DECODE_REFUSALS: list[tuple[type[jwt.PyJWTError], str, str]] = [
    (jwt.InvalidSignatureError, "assertion_signature", "The assertion's signature is not valid."),
    (jwt.ExpiredSignatureError, "assertion_expired", "The assertion has expired; send a new one."),
    (jwt.InvalidAudienceError, "audience_wrong", "aud must be this token endpoint's URL: {aud}"),
    (jwt.InvalidIssuerError, "iss_wrong", "iss is not your client id."),
    (
        jwt.ImmatureSignatureError,
        "assertion_not_yet_valid",
        "The assertion is not valid yet (iat or nbf in the future); check the client's clock.",
    ),
    (jwt.MissingRequiredClaimError, "claim_missing", "The assertion needs {claims} claims."),
]


def verify_assertion(
    session: Session, *, assertion: str, policy: TokenPolicy, now: dt.datetime
) -> tuple[ApiClient, ClientKey, dict[str, Any]]:
    """The client, the key that signed the assertion, and the verified claims."""
    alg, kid = _header(assertion)
    client = _claimed_client(session, assertion)
    key = _registered_key(session, client=client, kid=kid, alg=alg)
    try:
        claims: dict[str, Any] = jwt.decode(
            assertion,
            key=jwt.PyJWK(key.jwk, algorithm=alg),
            algorithms=[alg],
            audience=policy.audience,
            issuer=client.name,
            leeway=policy.clock_skew,
            options={"require": REQUIRED_CLAIMS},
        )
    except jwt.PyJWTError as error:
        raise _refusal(error, client=client, policy=policy) from None
    except (OverflowError, ValueError, TypeError):  # e.g. "exp": Infinity, which JSON allows
        raise _refusal(jwt.PyJWTError(), client=client, policy=policy) from None
    _check_claims(claims, client=client, policy=policy, now=now)
    return client, key, claims


def _refusal(error: jwt.PyJWTError, *, client: ApiClient, policy: TokenPolicy) -> InvalidClient:
    for kind, reason, message in _DECODE_REFUSALS:
        if isinstance(error, kind):
            detail = message.format(aud=policy.audience, claims=", ".join(REQUIRED_CLAIMS))
            return InvalidClient(detail, reason=reason, client_name=client.name)
    return InvalidClient(
        "The assertion is not valid: check its claims are of the right types.",
        reason="assertion_invalid",
        client_name=client.name,
    )


def _check_claims(
    claims: dict[str, Any], *, client: ApiClient, policy: TokenPolicy, now: dt.datetime
) -> None:
    if claims["sub"] != client.name:
        raise InvalidClient(
            "sub must equal iss: both are your client id.",
            reason="sub_wrong",
            client_name=client.name,
        )
    jti = claims["jti"]
    if not isinstance(jti, str) or not 1 <= len(jti) <= MAX_JTI_LENGTH:
        raise InvalidClient(
            f"jti must be a unique string of 1 to {MAX_JTI_LENGTH} characters (a UUID).",
            reason="jti_invalid",
            client_name=client.name,
        )
    latest = now + policy.max_assertion_lifetime + policy.clock_skew
    if not isinstance(claims["exp"], int | float) or claims["exp"] > latest.timestamp():
        minutes = policy.max_assertion_lifetime.total_seconds() / 60
        raise InvalidClient(
            f"exp is too far ahead: it may be at most {minutes:g} minutes from now.",
            reason="exp_too_far",
            client_name=client.name,
        )


def _use_jti(session: Session, *, client: ApiClient, jti: str, expires_at: dt.datetime) -> None:
    """Record the jti; the unique constraint refuses one already used, however close the race."""
    try:
        with session.begin_nested():
            session.add(UsedAssertion(api_client_id=client.id, jti=jti, expires_at=expires_at))
    except IntegrityError:
        raise InvalidClient(
            "This assertion's jti has been used already; make a new assertion with a new jti "
            "for every token request.",
            reason="jti_replayed",
            client_name=client.name,
        ) from None


# --- requests bearing an access token ------------------------------------------------------------


class InvalidAccessTokenError(NotAuthenticated):
    code = "invalid_credentials"


class AccessTokenExpiredError(NotAuthenticated):
    code = "token_expired"


def is_access_token(bearer: str) -> bool:
    return bearer.startswith(ACCESS_TOKEN_PREFIX)


def principal_for_access_token(session: Session, *, token: str, now: dt.datetime) -> Principal:
    row = session.scalars(
        select(AccessToken)
        .where(AccessToken.token_digest == digest(token))
        .options(
            joinedload(AccessToken.client_key),
            joinedload(AccessToken.api_client).joinedload(ApiClient.organisation),
        )
    ).first()  # one round trip: this runs on every request that bears a token
    if row is None:
        raise InvalidAccessTokenError(
            "The access token is not recognised. Get a new one from POST /oauth2/token."
        )
    if row.expires_at <= now:
        raise AccessTokenExpiredError(
            "The access token has expired. Get a new one from POST /oauth2/token."
        )
    if row.client_key.revoked_at is not None or row.api_client.revoked_at is not None:
        raise InvalidAccessTokenError(
            "The key or client this access token was issued to has been revoked."
        )
    return principal_for_client(row.api_client)


def prune(session: Session, *, now: dt.datetime, clock_skew: dt.timedelta) -> int:
    """Forget expired access tokens, and jtis whose assertions can no longer be accepted anyway."""
    removed = 0
    for statement in (
        delete(AccessToken).where(AccessToken.expires_at <= now),
        delete(UsedAssertion).where(UsedAssertion.expires_at < now - clock_skew),
    ):
        result = session.execute(statement)
        removed += int(getattr(result, "rowcount", 0) or 0)
    return removed
