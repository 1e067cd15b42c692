"""Settings: one class, read from the environment with the prefix ``EXHALE_``.

Nested groups use a double underscore: ``EXHALE_REFERRAL__THRESHOLD_PPM=4``.
This module is a leaf: it imports nothing else of the project.
"""

from __future__ import annotations

import base64
import enum
from functools import lru_cache
from pathlib import Path

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_DATABASE_URL = "sqlite:///./var/exhale.db"
DEFAULT_SECRET_KEY = "development-only-secret-key-change-me"  # noqa: S105 (refused in production)
# A Fernet key (32 bytes, URL-safe base64) known to everyone: refused in production.
DEFAULT_SEALING_KEY = "ZGV2ZWxvcG1lbnQtb25seS1zZWFsaW5nLWtleS0wMDA="
NEW_SEALING_KEY_HINT = (
    "python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())'"
)


class Environment(enum.StrEnum):
    development = "development"
    production = "production"


def sealing_keys(value: SecretStr) -> list[str]:
    """The comma-separated keys of ``EXHALE_DELIVERY__SEALING_KEYS``, the sealing one first."""
    return [key.strip() for key in value.get_secret_value().split(",") if key.strip()]


class ConfigError(Exception):
    """The configuration cannot be used; the message says which setting to change."""


class ReferralSettings(BaseModel):
    """Clinical thresholds (NICE NG209; see DOMAIN.md). Kept here so a trust can configure them."""

    threshold_ppm: int = Field(default=4, ge=1, le=100)
    source_check_ppm: int = Field(default=3, ge=0, le=100)
    poisoning_risk_above_ppm: int = Field(default=10, ge=0, le=200)
    urgent_above_ppm: int = Field(default=72, ge=1, le=499)
    recently_stopped_days: int = Field(default=14, ge=0, le=365)
    co_confirmed_quit_below_ppm: int = Field(default=10, ge=1, le=100)
    max_contact_attempts: int = Field(default=3, ge=1, le=20)
    first_contact_working_days: int = Field(default=1, ge=1, le=20)
    quit_date_max_days_ahead: int = Field(default=90, ge=0, le=365)  # after today; later refused


class AuthSettings(BaseModel):
    """Web sessions, lockout and rate limits."""

    session_idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    session_max_hours: int = Field(default=12, ge=1, le=7 * 24)
    lockout_after_failures: int = Field(default=5, ge=1, le=100)
    lockout_base_s: int = Field(default=60, ge=1, le=3600)
    lockout_max_s: int = Field(default=3600, ge=1, le=24 * 3600)
    login_attempts_per_minute: int = Field(default=10, ge=1, le=10_000)
    api_requests_per_minute: int = Field(default=600, ge=1, le=1_000_000)
    # A web process trusts an API key it checked this recently without reading the database
    # again: a revoked key still works for up to this long on other processes. 0: always check.
    api_key_cache_s: float = Field(default=0.0, ge=0, le=60)  # 0: revocation counts at once
    min_password_length: int = Field(default=12, ge=8, le=128)
    cookie_secure: bool | None = None  # None: Secure in production and whenever served over https


class DeviceSettings(BaseModel):
    """Monitor results from the bridges."""

    unrecorded_after_minutes: int = Field(default=120, ge=1, le=7 * 24 * 60)


class WorkerSettings(BaseModel):
    lock_retry_s: float = Field(default=5.0, gt=0, le=600)  # standby retries; leader re-checks
    # Override a scheduled job's interval by its name: EXHALE_WORKER__JOB_INTERVALS_S='{"x": 60}'
    job_intervals_s: dict[str, float] = Field(default_factory=dict)

    @field_validator("job_intervals_s")
    @classmethod
    def _positive_intervals(cls, value: dict[str, float]) -> dict[str, float]:
        if any(seconds <= 0 for seconds in value.values()):
            raise ValueError("every interval must be more than 0 seconds")
        return value


class DeliverySettings(BaseModel):
    """Webhooks to stop-smoking services: polling, timeouts, retry schedule, destination safety."""

    poll_interval_s: float = Field(default=0.5, gt=0, le=60)  # SQLite, or when LISTEN fails
    listen_poll_interval_s: float = Field(default=5.0, gt=0, le=600)  # PostgreSQL: retries due
    concurrency: int = Field(default=8, ge=1, le=64)  # sends in flight per worker
    connect_timeout_s: float = Field(default=5.0, gt=0, le=60)
    read_timeout_s: float = Field(default=10.0, gt=0, le=300)
    attempt_deadline_s: float = Field(default=30.0, gt=0, le=600)  # from the claim, body included
    lease_s: float = Field(default=120.0, gt=0, le=3600)  # a crashed worker's claim expires
    retry_for_hours: float = Field(default=72.0, gt=0, le=24 * 30)  # then the message fails
    backoff_base_s: float = Field(default=5.0, gt=0, le=3600)
    backoff_cap_s: float = Field(default=3600.0, gt=0, le=24 * 3600)
    retry_after_cap_s: float = Field(default=24 * 3600.0, gt=0, le=7 * 24 * 3600)
    max_response_bytes: int = Field(default=64 * 1024, ge=0, le=16 * 1024 * 1024)
    secret_overlap_hours: float = Field(default=24.0, ge=0, le=24 * 30)
    # Days a delivered message keeps her details; then only its ids, status and API path remain.
    delivered_payload_days: int = Field(default=30, ge=1, le=3650)
    allow_private_destinations: bool | None = None  # None: allowed in development only
    # Keys that seal the services' signing secrets in the database, comma-separated: the first
    # seals, every one opens. To change key, put the new one first, run `exhale delivery secret
    # reseal`, then drop the old one.
    sealing_keys: SecretStr = SecretStr(DEFAULT_SEALING_KEY)

    @field_validator("sealing_keys")
    @classmethod
    def _fernet_keys(cls, value: SecretStr) -> SecretStr:
        keys = sealing_keys(value)
        if not keys:
            raise ValueError(f"give at least one key; make one with {NEW_SEALING_KEY_HINT}")
        for number, key in enumerate(keys, start=1):
            try:
                valid = len(base64.urlsafe_b64decode(key.encode("ascii"))) == 32
            except (ValueError, UnicodeEncodeError):
                valid = False
            if not valid:
                raise ValueError(
                    f"key {number} is not 32 bytes in URL-safe base64; make one with "
                    f"{NEW_SEALING_KEY_HINT}"
                )
        return value

    @model_validator(mode="after")
    def _lease_outlasts_an_attempt(self) -> DeliverySettings:
        if self.lease_s < 2 * self.attempt_deadline_s:
            raise ValueError(
                "EXHALE_DELIVERY__LEASE_S must be at least twice "
                "EXHALE_DELIVERY__ATTEMPT_DEADLINE_S, or a slow attempt could be sent twice at once"
            )
        return self


MAX_STATUS_WINDOW_DAYS = 14


class MeasuresSettings(BaseModel):
    """The change package's monthly measures, export and SPC charts: see docs/measures.md."""

    elevated_co_ppm: int = Field(default=4, ge=1, le=100)  # MSDS: smoker = self-report or >= 4
    status_window_days: int = Field(default=3, ge=0, le=MAX_STATUS_WINDOW_DAYS)  # MSDS: +/- 3 days
    suppress_below: int = Field(default=8, ge=0, le=1000)  # CSV export: counts 1 to 7 shown as *
    run_length: int = Field(default=7, ge=5, le=12)  # SPC shift: points in a row on one side
    trend_length: int = Field(default=7, ge=5, le=12)  # SPC trend: points rising or falling
    positive_feedback_from: int = Field(default=4, ge=1, le=5)  # a rating of 4 or 5 of 5
    postgres_work_mem_mb: int = Field(default=128, ge=4, le=4096)  # per sort or hash, per query


class OAuthSettings(BaseModel):
    """Signed-JWT client credentials (RFC 7523 ``private_key_jwt``): see docs/oauth.md."""

    # The token endpoint's public URL, which every client assertion's `aud` must equal. Unset, the
    # URL the request arrived at is used in development; production refuses to issue tokens.
    token_url: str | None = None
    access_token_ttl_s: int = Field(default=600, ge=60, le=3600)
    max_assertion_lifetime_s: int = Field(default=300, ge=30, le=300)  # `exp` at most this ahead
    clock_skew_s: int = Field(default=30, ge=0, le=120)

    @field_validator("token_url")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if not value.startswith(("https://", "http://")) or "?" in value or "#" in value:
            raise ValueError(
                "give the token endpoint's full public URL, for example "
                "https://exhale.example.nhs.uk/oauth2/token"
            )
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="EXHALE_",
        env_nested_delimiter="__",
        extra="ignore",
        case_sensitive=False,
    )

    environment: Environment = Environment.development
    database_url: str = DEFAULT_DATABASE_URL
    secret_key: str = Field(default=DEFAULT_SECRET_KEY, min_length=16)
    log_level: str = "INFO"
    log_json: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    database_connect_timeout_s: int = Field(default=5, ge=1, le=120)
    allow_synthetic_nhs_numbers: bool | None = None  # None: allowed in development only
    max_co_ppm: int = Field(default=500, ge=1, le=10_000)
    postnatal_days: int = Field(default=56, ge=0, le=365)
    # POST /api/v1/readings on PostgreSQL in three statements where it can (app.api.fast_readings).
    fast_readings: bool = True
    # /metrics: with a token, scrapes send it as a bearer token; without, only loopback may scrape.
    metrics_token: SecretStr | None = Field(default=None, min_length=16)
    # Strict-Transport-Security in production and over https; 0 leaves the header off.
    hsts_max_age_s: int = Field(default=365 * 24 * 3600, ge=0, le=2 * 365 * 24 * 3600)
    referral: ReferralSettings = ReferralSettings()
    auth: AuthSettings = AuthSettings()
    worker: WorkerSettings = WorkerSettings()
    devices: DeviceSettings = DeviceSettings()
    delivery: DeliverySettings = DeliverySettings()
    measures: MeasuresSettings = MeasuresSettings()
    oauth: OAuthSettings = OAuthSettings()

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return normalise_database_url(value).render_as_string(hide_password=False)

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("use one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @model_validator(mode="after")
    def _no_default_secrets_in_production(self) -> Settings:
        if self.environment is Environment.production and self.secret_key == DEFAULT_SECRET_KEY:
            raise ValueError(
                "EXHALE_SECRET_KEY is the development default; production needs a random secret "
                "of at least 16 characters (for example: python3 -c "
                "'import secrets; print(secrets.token_urlsafe(32))')"
            )
        if self.environment is Environment.production and DEFAULT_SEALING_KEY in sealing_keys(
            self.delivery.sealing_keys
        ):
            raise ValueError(
                "EXHALE_DELIVERY__SEALING_KEYS holds the development default; production needs "
                f"a key of its own (make one with {NEW_SEALING_KEY_HINT})"
            )
        return self

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.production

    @property
    def synthetic_nhs_numbers_allowed(self) -> bool:
        if self.allow_synthetic_nhs_numbers is None:
            return not self.is_production
        return self.allow_synthetic_nhs_numbers

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.database_url).get_backend_name() == "sqlite"


def normalise_database_url(value: str) -> URL:
    """Parse a database URL and pin the PostgreSQL driver to psycopg 3."""
    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError(
            "not a database URL; use sqlite:///path/to/file.db or "
            "postgresql://user:password@host:5432/dbname"
        ) from None
    backend = url.get_backend_name()
    if backend in {"postgres", "postgresql"}:
        return url.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if url.database in (None, "", ":memory:"):
            raise ValueError("SQLite needs a file path, for example sqlite:///./var/exhale.db")
        return url.set(drivername="sqlite")
    raise ValueError(
        f"database '{backend}' is not supported; use sqlite:///path/to/file.db or "
        "postgresql://user:password@host:5432/dbname"
    )


def describe_validation_error(error: ValidationError) -> str:
    """One line per bad setting, naming the environment variable and the fix."""
    lines = []
    for item in error.errors():
        location = "__".join(str(part) for part in item["loc"])
        message = str(item["msg"]).removeprefix("Value error, ")
        lines.append(f"EXHALE_{location.upper()}: {message}" if location else message)
    return "; ".join(lines)


def load_settings() -> Settings:
    """Read the settings, turning validation errors into a :class:`ConfigError`."""
    try:
        return Settings()
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def sqlite_path(settings: Settings) -> Path | None:
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or url.database is None:
        return None
    return Path(url.database)
