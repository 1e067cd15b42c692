"""Migrations build the schema the models describe, and can be undone and redone."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from cryptography.fernet import Fernet
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

import app.models  # noqa: F401
from app import migrate
from app.db import Base, make_engine

CORE_TABLES = {
    "organisation",
    "user_account",
    "api_client",
    "pregnancy",
    "contact",
    "co_reading",
    "referral",
    "referral_event",
    "outbox_message",
    "audit_event",
}


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_on_an_empty_database(fresh_database_url: str) -> None:
    migrate.upgrade(fresh_database_url)
    assert _tables(fresh_database_url) >= CORE_TABLES

    migrate.downgrade(fresh_database_url, "base")
    assert _tables(fresh_database_url) <= {"alembic_version"}

    migrate.upgrade(fresh_database_url)
    assert _tables(fresh_database_url) >= CORE_TABLES


def test_models_and_migrations_agree(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_test_database_is_at_head(engine: Engine) -> None:
    with engine.connect() as connection:
        assert migrate.current_revisions(connection) == migrate.head_revisions()
        assert migrate.pending_message(connection) is None


def test_sqlite_enforces_foreign_keys_and_uses_wal(engine: Engine) -> None:
    with engine.connect() as connection:
        if connection.dialect.name != "sqlite":
            # PostgreSQL always enforces foreign keys; check that instead.
            violation = connection.execute(
                text(
                    "SELECT count(*) FROM information_schema.table_constraints "
                    "WHERE constraint_type = 'FOREIGN KEY' AND table_name = 'co_reading'"
                )
            ).scalar_one()
            assert violation >= 3
            return
        assert connection.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
        assert connection.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"


def test_signing_secrets_are_sealed_with_the_configured_key_and_opened_on_the_way_back(
    fresh_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("EXHALE_DELIVERY__SEALING_KEYS", key)
    migrate.upgrade(fresh_database_url, "0009")
    engine = make_engine(fresh_database_url)
    created = "2026-11-01 09:00:00+00:00"
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO organisation (id, kind, code, name, is_active, created_at) "
                    "VALUES (1, 'stop_smoking_service', 'SVC1', 'Service', true, :at)"
                ),
                {"at": created},
            )
            conn.execute(
                text(
                    "INSERT INTO delivery_secret (service_id, secret, created_at) "
                    "VALUES (1, 'whsec_c2VjcmV0LWJlZm9yZS1zZWFsaW5n', :at)"
                ),
                {"at": created},
            )
        migrate.upgrade(fresh_database_url)
        with engine.connect() as conn:
            sealed = conn.execute(text("SELECT sealed_secret FROM delivery_secret")).scalar_one()
        assert "c2VjcmV0LWJlZm9yZS1zZWFsaW5n" not in sealed
        assert Fernet(key).decrypt(sealed.encode()) == b"whsec_c2VjcmV0LWJlZm9yZS1zZWFsaW5n"

        migrate.downgrade(fresh_database_url, "0009")
        with engine.connect() as conn:
            opened = conn.execute(text("SELECT secret FROM delivery_secret")).scalar_one()
        assert opened == "whsec_c2VjcmV0LWJlZm9yZS1zZWFsaW5n"
    finally:
        engine.dispose()
