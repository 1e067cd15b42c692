"""Users, API clients and web sessions: creating them, and authenticating requests."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, select
from sqlalchemy.orm import Session

from app.errors import Conflict, FieldError, InvalidInput, NotAuthenticated, NotFound
from app.identity.models import ApiClient, ClientRole, User, UserRole, WebSession
from app.identity.passwords import hash_password, needs_rehash, verify_password
from app.identity.principal import ActorType, Principal
from app.orgs.models import Organisation, OrganisationKind

API_KEY_PREFIX = "exh_"
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@-]{1,149}$")
# Verified against when the username is unknown, so both cases take the same time.
_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))

ROLE_ORGANISATION_KINDS = {
    UserRole.midwife: {OrganisationKind.maternity_unit},
    UserRole.lead: {OrganisationKind.maternity_unit},
    UserRole.advisor: {OrganisationKind.stop_smoking_service, OrganisationKind.maternity_unit},
    UserRole.admin: {OrganisationKind.maternity_unit, OrganisationKind.stop_smoking_service},
    ClientRole.epr: {OrganisationKind.maternity_unit},
    ClientRole.bridge: {OrganisationKind.maternity_unit},
    ClientRole.service: {OrganisationKind.stop_smoking_service},
}


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_role_fits(role: UserRole | ClientRole, organisation: Organisation) -> None:
    allowed = ROLE_ORGANISATION_KINDS[role]
    if OrganisationKind(organisation.kind) not in allowed:
        kinds = " or ".join(sorted(k.value.replace("_", " ") for k in allowed))
        raise InvalidInput(
            f"A {role.value} belongs to a {kinds}; {organisation.code} is a "
            f"{organisation.kind.replace('_', ' ')}.",
            fields=[FieldError("organisation", f"choose a {kinds}")],
        )


def check_password_policy(password: str, *, username: str, min_length: int) -> None:
    problems = []
    if len(password) < min_length:
        problems.append(f"use at least {min_length} characters (three random words work well)")
    if username and username.lower() in password.lower():
        problems.append("must not contain the username")
    if problems:
        raise InvalidInput(
            "Choose a different password.",
            fields=[FieldError("password", p) for p in problems],
        )


def create_user(
    session: Session,
    *,
    username: str,
    role: UserRole,
    organisation: Organisation,
    password: str,
    min_password_length: int,
    display_name: str = "",
    must_change_password: bool = True,
) -> User:
    username = username.strip().lower()
    if not _USERNAME.fullmatch(username):
        raise InvalidInput(
            "Check username.",
            fields=[FieldError("username", "2-150 of a-z, 0-9 and . _ @ -, starting alphanumeric")],
        )
    _check_role_fits(role, organisation)
    check_password_policy(password, username=username, min_length=min_password_length)
    if session.scalars(select(User.id).where(User.username == username)).first():
        raise Conflict(f"The username {username} is taken.")
    user = User(
        username=username,
        display_name=display_name.strip() or username,
        password_hash=hash_password(password),
        role=role.value,
        organisation=organisation,
        must_change_password=must_change_password,
    )
    session.add(user)
    session.flush()
    return user


def get_user_by_username_or_raise(session: Session, username: str) -> User:
    user = session.scalars(select(User).where(User.username == username.strip().lower())).first()
    if user is None:
        raise NotFound(f"No user is called {username!r}.", code="user_not_found")
    return user


def set_active(session: Session, *, user: User, active: bool) -> None:
    user.is_active = active
    if not active:
        session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    session.flush()


def change_password(
    session: Session, *, user: User, current: str, new: str, min_length: int
) -> None:
    if not verify_password(user.password_hash, current):
        raise InvalidInput(
            "Check your current password.",
            fields=[FieldError("current_password", "is not right")],
        )
    check_password_policy(new, username=user.username, min_length=min_length)
    if verify_password(user.password_hash, new):
        raise InvalidInput(
            "Choose a new password.",
            fields=[FieldError("new_password", "must differ from the current one")],
        )
    user.password_hash = hash_password(new)
    user.must_change_password = False
    session.flush()


# --- login and lockout -------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginPolicy:
    lockout_after_failures: int
    lockout_base_s: int
    lockout_max_s: int


class LoginFailedError(NotAuthenticated):
    code = "login_failed"


def lockout_seconds(failures: int, policy: LoginPolicy) -> int:
    """Locked for the base time after the Nth failure, doubling with each further one."""
    over = failures - policy.lockout_after_failures
    if over < 0:
        return 0
    return int(min(policy.lockout_base_s * 2**over, policy.lockout_max_s))


def authenticate_password(
    session: Session, *, username: str, password: str, policy: LoginPolicy, now: dt.datetime
) -> User:
    """The user, or :class:`LoginFailedError` with a message fit to show on the login page."""
    user = session.scalars(select(User).where(User.username == username.strip().lower())).first()
    if user is None:
        verify_password(_DUMMY_HASH, password)
        raise LoginFailedError("The username or password is not right.")
    if user.locked_until is not None and user.locked_until > now:
        until = user.locked_until.strftime("%H:%M UTC")
        raise LoginFailedError(f"Too many failed attempts: this account is locked until {until}.")
    if not verify_password(user.password_hash, password):
        user.failed_login_count += 1
        seconds = lockout_seconds(user.failed_login_count, policy)
        if seconds:
            user.locked_until = now + dt.timedelta(seconds=seconds)
        raise LoginFailedError("The username or password is not right.")
    if not user.is_active:
        raise LoginFailedError("This account is disabled. Ask your administrator.")
    user.failed_login_count = 0
    user.locked_until = None
    user.last_login_at = now
    if needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


# --- web sessions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionPolicy:
    idle: dt.timedelta
    maximum: dt.timedelta


def start_web_session(
    session: Session, *, user: User, now: dt.datetime, policy: SessionPolicy
) -> str:
    """Create a session and return the token for the cookie (only its digest is stored)."""
    token = secrets.token_urlsafe(32)
    session.add(
        WebSession(
            id=digest(token),
            user_id=user.id,
            csrf_token=secrets.token_urlsafe(32),
            created_at=now,
            last_seen_at=now,
            expires_at=now + policy.maximum,
        )
    )
    session.flush()
    return token


def end_web_session(session: Session, token: str) -> None:
    session.execute(delete(WebSession).where(WebSession.id == digest(token)))


def prune_web_sessions(session: Session, *, now: dt.datetime, policy: SessionPolicy) -> int:
    result = session.execute(
        delete(WebSession).where(
            (WebSession.expires_at <= now) | (WebSession.last_seen_at <= now - policy.idle)
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


class SessionExpiredError(NotAuthenticated):
    code = "session_expired"


def principal_for_session_token(
    session: Session, *, token: str, now: dt.datetime, policy: SessionPolicy
) -> Principal:
    row = session.get(WebSession, digest(token))
    if row is None:
        raise SessionExpiredError("Your session has ended. Log in again.")
    if row.expires_at <= now or row.last_seen_at <= now - policy.idle:
        session.delete(row)
        raise SessionExpiredError("Your session has expired. Log in again.")
    user = row.user
    if not user.is_active:
        raise NotAuthenticated("This account is disabled. Ask your administrator.")
    if now - row.last_seen_at > dt.timedelta(seconds=60):
        row.last_seen_at = now  # at most one write a minute per session
    return Principal(
        actor_type=ActorType.user,
        id=user.id,
        name=user.username,
        role=user.role,
        organisation_id=user.organisation_id,
        organisation_kind=user.organisation.kind,
        must_change_password=user.must_change_password,
        session_id=row.id,
        csrf_token=row.csrf_token,
    )


# --- API clients -------------------------------------------------------------------------------


def create_api_client(
    session: Session, *, name: str, role: ClientRole, organisation: Organisation
) -> tuple[ApiClient, str]:
    """Create a client; return it with its secret, which is not stored and cannot be shown again."""
    name = name.strip()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name):
        raise InvalidInput(
            "Check name.",
            fields=[FieldError("name", "1-100 of letters, digits and . _ -")],
        )
    _check_role_fits(role, organisation)
    if session.scalars(select(ApiClient.id).where(ApiClient.name == name)).first():
        raise Conflict(f"An API client called {name} already exists; revoke it or pick a new name.")
    secret = API_KEY_PREFIX + secrets.token_urlsafe(32)
    client = ApiClient(
        name=name, role=role.value, organisation=organisation, secret_digest=digest(secret)
    )
    session.add(client)
    session.flush()
    return client, secret


def revoke_api_client(session: Session, *, name: str, now: dt.datetime) -> ApiClient:
    client = session.scalars(select(ApiClient).where(ApiClient.name == name)).first()
    if client is None:
        raise NotFound(f"No API client is called {name!r}.", code="api_client_not_found")
    if client.revoked_at is None:
        client.revoked_at = now
    session.flush()
    API_KEY_CACHE.clear()  # other processes' caches let the key in for at most their lifetime
    return client


def principal_for_client(client: ApiClient) -> Principal:
    """An API client acting (by a signed-JWT token, or for an MLLP listener): its organisation
    and role apply."""
    return Principal(
        actor_type=ActorType.api_client,
        id=client.id,
        name=client.name,
        role=client.role,
        organisation_id=client.organisation_id,
        organisation_kind=client.organisation.kind,
    )


class InvalidApiKeyError(NotAuthenticated):
    code = "invalid_credentials"


class _ApiKeyCache:
    """Recently authenticated API keys in this process: digest -> (principal, good until).

    Every request of a busy EPR feed would otherwise read its client and organisation again. A
    revocation reaches this process's cache at once (``revoke_api_client`` clears it) and every
    other process's within the entry lifetime, ``EXHALE_AUTH__API_KEY_CACHE_S`` (off by default:
    a revoked key is then refused at once everywhere). Keys that fail are never cached.
    """

    MAX_ENTRIES = 1024

    def __init__(self) -> None:
        self._entries: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def get(self, key_digest: str) -> Principal | None:
        with self._lock:
            entry = self._entries.get(key_digest)
        if entry is None or entry[1] <= time.monotonic():
            return None
        return entry[0]

    def put(self, key_digest: str, principal: Principal, lifetime_s: float) -> None:
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[key_digest] = (principal, time.monotonic() + lifetime_s)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


API_KEY_CACHE = _ApiKeyCache()


def principal_for_api_key(session: Session, secret: str, *, cache_s: float = 0.0) -> Principal:
    """The API client's principal, or :class:`InvalidApiKeyError`; ``cache_s`` > 0 lets a key
    that authenticated in the last ``cache_s`` seconds skip the database (see ``_ApiKeyCache``)."""
    key_digest = digest(secret)
    if cache_s > 0 and (cached := API_KEY_CACHE.get(key_digest)) is not None:
        return cached
    principal = _principal_for_api_key(session, secret)
    if cache_s > 0:
        API_KEY_CACHE.put(key_digest, principal, cache_s)
    return principal


# Built once: building a statement costs more CPU than SQLAlchemy's cached compile of it.
_CLIENT_BY_DIGEST = (
    select(ApiClient, Organisation.kind)
    .join(Organisation, Organisation.id == ApiClient.organisation_id)
    .where(ApiClient.secret_digest == bindparam("digest"))
)


def _principal_for_api_key(session: Session, secret: str) -> Principal:
    row = session.execute(_CLIENT_BY_DIGEST, {"digest": digest(secret)}).first()
    client = row[0] if row is not None else None
    if client is None or not hmac.compare_digest(client.secret_digest, digest(secret)):
        raise InvalidApiKeyError(
            "The API key is not recognised. Check it was copied whole, or ask your "
            "administrator for a new one."
        )
    if client.revoked_at is not None:
        raise InvalidApiKeyError(
            "This API key has been revoked. Ask your administrator for a new one."
        )
    return Principal(
        actor_type=ActorType.api_client,
        id=client.id,
        name=client.name,
        role=client.role,
        organisation_id=client.organisation_id,
        organisation_kind=row[1] if row is not None else None,
    )
