"""Shared fixtures: one migrated database per run; each test in a transaction rolled back after.

``EXHALE_TEST_DATABASE_URL`` names a PostgreSQL database to run the whole suite on; without it the
suite runs on a SQLite file in a temporary folder.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.orm import Session

from app import migrate
from app.config import Settings, normalise_database_url
from app.db import make_engine
from app.main import create_app

TEST_DATABASE_URL = os.environ.get("EXHALE_TEST_DATABASE_URL", "").strip()


def on_postgres() -> bool:
    return bool(TEST_DATABASE_URL)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``postgres`` test PostgreSQL-only behaviour: deselected on SQLite runs."""
    if on_postgres():
        return
    keep = [item for item in items if item.get_closest_marker("postgres") is None]
    dropped = [item for item in items if item.get_closest_marker("postgres") is not None]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def _url(value: str) -> str:
    return normalise_database_url(value).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    if TEST_DATABASE_URL:
        return _url(TEST_DATABASE_URL)
    return _url(f"sqlite:///{tmp_path_factory.mktemp('db') / 'exhale-test.db'}")


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as connection:
        transaction = connection.begin()
        yield connection
        transaction.rollback()


@pytest.fixture
def session(connection: Connection) -> Iterator[Session]:
    session = Session(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    yield session
    session.close()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, log_json=True)


class _OnTestConnection:
    """``app.api.fast_readings``' transactions as savepoints on the test's connection."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    async def run(self, *statements: tuple[str, Mapping[str, Any]], commit: bool = False) -> Any:
        return [self.connection.exec_driver_sql(sql, dict(p)).first() for sql, p in statements]

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[_OnTestConnection]:
        with self.connection.begin_nested():
            yield self


@pytest.fixture
def app(settings: Settings, connection: Connection) -> Iterator[FastAPI]:
    application = create_app(settings)
    # Requests use the test's connection: their commits are savepoints the test rolls back.
    application.state.sessionmaker = lambda: Session(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    if on_postgres() and settings.fast_readings:
        application.state.reading_transactions = _OnTestConnection(connection)
    yield application
    application.state.engine.dispose()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def fresh_database_url(tmp_path: Path, database_url: str) -> Iterator[str]:
    """An empty database of the same kind as the suite's (a new PostgreSQL database, or a file)."""
    if not on_postgres():
        yield _url(f"sqlite:///{tmp_path / 'fresh.db'}")
        return
    name = f"exhale_fresh_{uuid.uuid4().hex[:12]}"
    server = make_engine(
        make_url(database_url).set(database="postgres").render_as_string(hide_password=False),
        isolation_level="AUTOCOMMIT",
    )
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()
