"""The command line: clear one-line failures, and the first-start bootstrap."""

from __future__ import annotations

import re

from sqlalchemy import select

from app.db import make_engine, make_sessionmaker
from app.identity.models import User
from app.identity.passwords import verify_password
from app.orgs.models import Organisation
from tests.helpers import exhale_env, run_exhale


def test_help_lists_the_commands() -> None:
    result = run_exhale("--help", env=exhale_env("sqlite:///./var/unused.db"))
    assert result.returncode == 0
    for command in ("run", "serve", "worker", "migrate", "bootstrap"):
        assert command in result.stdout


def test_an_unreachable_database_is_one_clear_line() -> None:
    env = exhale_env("postgresql://exhale:hunter2@127.0.0.1:1/exhale")
    result = run_exhale("migrate", env=env)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("exhale: the database at postgresql+psycopg://exhale:***@127.0.0.1:1")
    assert "EXHALE_DATABASE_URL" in last
    assert "hunter2" not in result.stderr


def test_an_unknown_setting_value_is_one_clear_line() -> None:
    env = exhale_env("sqlite:///./var/unused.db", EXHALE_ENVIRONMENT="prod")
    result = run_exhale("migrate", env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "exhale: configuration error: EXHALE_ENVIRONMENT: "
        "Input should be 'development' or 'production'"
    )


def test_production_with_the_default_secret_refuses_to_start() -> None:
    env = exhale_env("sqlite:///./var/unused.db", EXHALE_ENVIRONMENT="production")
    result = run_exhale("serve", env=env)
    assert result.returncode == 2
    assert "EXHALE_SECRET_KEY is the development default" in result.stderr
    assert "Traceback" not in result.stderr


def test_bootstrap_creates_the_demo_set_up_once_with_a_working_password(
    fresh_database_url: str,
) -> None:
    env = exhale_env(fresh_database_url)
    first = run_exhale("bootstrap", env=env)
    assert first.returncode == 0, first.stderr
    match = re.search(r"password: (\S+)", first.stdout)
    assert match, first.stdout
    password = match.group(1)

    engine = make_engine(fresh_database_url)
    try:
        with make_sessionmaker(engine)() as session:
            admin = session.scalars(select(User).where(User.username == "admin")).one()
            assert admin.role == "admin"
            assert admin.must_change_password
            assert verify_password(admin.password_hash, password)
            assert not verify_password(admin.password_hash, password + "x")
            codes = {o.code: o for o in session.scalars(select(Organisation))}
            assert codes["DEMO1"].default_service_id == codes["DEMOSS"].id
    finally:
        engine.dispose()

    second = run_exhale("bootstrap", env=env)
    assert second.returncode == 0
    assert "password" not in second.stdout
    assert password not in second.stderr
