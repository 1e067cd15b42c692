"""Settings come from EXHALE_ variables; bad ones are refused with a line naming the variable."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from app.config import (
    DEFAULT_SEALING_KEY,
    DEFAULT_SECRET_KEY,
    ConfigError,
    Environment,
    load_settings,
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("EXHALE_"):
            monkeypatch.delenv(name)


def test_defaults_are_development_on_the_embedded_sqlite_file() -> None:
    settings = load_settings()
    assert settings.environment is Environment.development
    assert settings.database_url == "sqlite:///./var/exhale.db"
    assert settings.referral.threshold_ppm == 4


def test_nested_groups_use_a_double_underscore(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXHALE_REFERRAL__THRESHOLD_PPM", "5")
    assert load_settings().referral.threshold_ppm == 5


def test_postgres_urls_use_psycopg_3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXHALE_DATABASE_URL", "postgres://u:p@db.example:5432/exhale")
    assert load_settings().database_url == "postgresql+psycopg://u:p@db.example:5432/exhale"


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("EXHALE_ENVIRONMENT", "staging", "EXHALE_ENVIRONMENT: Input should be 'development'"),
        ("EXHALE_DATABASE_URL", "mysql://x/y", "database 'mysql' is not supported"),
        ("EXHALE_DATABASE_URL", "not a url", "not a database URL"),
        ("EXHALE_PORT", "eighty", "EXHALE_PORT:"),
        ("EXHALE_REFERRAL__THRESHOLD_PPM", "0", "EXHALE_REFERRAL__THRESHOLD_PPM:"),
        ("EXHALE_LOG_LEVEL", "LOUD", "use one of DEBUG"),
        ("EXHALE_DELIVERY__SEALING_KEYS", "too-short", "SEALING_KEYS: key 1 is not 32 bytes"),
        ("EXHALE_DELIVERY__SEALING_KEYS", " , ", "SEALING_KEYS: give at least one key"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert expected in str(raised.value)
    assert "\n" not in str(raised.value)


def test_production_refuses_the_default_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXHALE_ENVIRONMENT", "production")
    with pytest.raises(ConfigError, match="EXHALE_SECRET_KEY is the development default"):
        load_settings()
    monkeypatch.setenv("EXHALE_SECRET_KEY", "a-real-random-secret-of-some-length")
    with pytest.raises(ConfigError, match="EXHALE_DELIVERY__SEALING_KEYS holds the development"):
        load_settings()
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("EXHALE_DELIVERY__SEALING_KEYS", f"{key},{DEFAULT_SEALING_KEY}")
    with pytest.raises(ConfigError, match="EXHALE_DELIVERY__SEALING_KEYS holds the development"):
        load_settings()
    monkeypatch.setenv("EXHALE_DELIVERY__SEALING_KEYS", key)
    assert load_settings().is_production


def test_the_default_secret_is_accepted_in_development() -> None:
    assert load_settings().secret_key == DEFAULT_SECRET_KEY
