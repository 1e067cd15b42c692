"""The administration commands, run as an operator would on a freshly set-up database."""

from __future__ import annotations

import re
import subprocess

from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.helpers import exhale_env, invoke_exhale, run_exhale


def _run(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return invoke_exhale(*args, env=env, stdin=stdin)


def test_operator_sets_up_a_unit_its_people_and_machines(fresh_database_url: str) -> None:
    env = exhale_env(fresh_database_url)
    assert run_exhale("bootstrap", env=env).returncode == 0

    service = _run(
        env,
        "orgs",
        "create",
        "--code",
        "SSS01",
        "--name",
        "Leeds Stop Smoking",
        "--kind",
        "service",
    )
    assert service.returncode == 0, service.stderr
    unit = _run(
        env,
        "orgs",
        "create",
        "--code",
        "RR801",
        "--name",
        "Leeds Maternity",
        "--kind",
        "unit",
        "--default-service",
        "SSS01",
    )
    assert unit.returncode == 0, unit.stderr
    lonely = _run(
        env, "orgs", "create", "--code", "RR802", "--name", "No service", "--kind", "unit"
    )
    assert lonely.returncode == 2
    assert "needs --default-service" in lonely.stderr
    routed = _run(
        env, "orgs", "route", "--unit", "rr801", "--district", "ls6", "--service", "DEMOSS"
    )
    assert routed.returncode == 0, routed.stderr
    assert "referrals from LS6 go to DEMOSS" in routed.stdout
    listing = _run(env, "orgs", "list").stdout
    assert re.search(r"RR801\s+maternity_unit\s+Leeds Maternity -> SSS01", listing)

    created = _run(
        env,
        "users",
        "create",
        "--username",
        "Midwife.One",
        "--role",
        "midwife",
        "--organisation",
        "rr801",
        "--password-stdin",
        stdin="a long enough passphrase\n",
    )
    assert created.returncode == 0, created.stderr
    assert "Created midwife midwife.one at RR801." in created.stdout

    weak = _run(
        env,
        "users",
        "create",
        "--username",
        "weak",
        "--role",
        "midwife",
        "--organisation",
        "RR801",
        "--password-stdin",
        stdin="short\n",
    )
    assert weak.returncode == 2
    assert "at least 12 characters" in weak.stderr
    assert "Traceback" not in weak.stderr

    wrong_kind = _run(
        env,
        "users",
        "create",
        "--username",
        "adv",
        "--role",
        "lead",
        "--organisation",
        "SSS01",
        "--password-stdin",
        stdin="a long enough passphrase\n",
    )
    assert wrong_kind.returncode == 2
    assert "A lead belongs to a maternity unit" in wrong_kind.stderr

    key = _run(
        env, "apikey", "create", "--name", "epr-main", "--role", "epr", "--organisation", "RR801"
    )
    assert key.returncode == 0, key.stderr
    secret = key.stdout.strip()
    assert re.fullmatch(r"exh_[A-Za-z0-9_-]{40,}", secret), key.stdout
    assert key.stdout == secret + "\n"  # the secret, and nothing else, on standard output
    assert secret not in _run(env, "apikey", "list").stdout

    settings = Settings(database_url=fresh_database_url)
    with TestClient(create_app(settings)) as client:
        headers = {"Authorization": f"Bearer {secret}"}
        found = client.get(
            "/api/v1/pregnancies", params={"nhs_number": "9434765919"}, headers=headers
        )
        assert found.status_code == 200
        assert found.json() == []

        assert _run(env, "apikey", "revoke", "epr-main").returncode == 0
        refused = client.get(
            "/api/v1/pregnancies", params={"nhs_number": "9434765919"}, headers=headers
        )
        assert refused.status_code == 401

    disabled = _run(env, "users", "disable", "midwife.one")
    assert disabled.returncode == 0
    assert "midwife.one" in _run(env, "users", "list").stdout
    assert "(disabled)" in _run(env, "users", "list").stdout

    unknown = _run(env, "users", "disable", "nobody")
    assert unknown.returncode == 2
    assert unknown.stderr.strip() == "exhale: No user is called 'nobody'."


def test_who_viewed_lists_reads_of_a_womans_record(fresh_database_url: str) -> None:
    env = exhale_env(fresh_database_url)
    assert run_exhale("bootstrap", env=env).returncode == 0
    settings = Settings(database_url=fresh_database_url)
    application = create_app(settings)
    from app.db import session_scope
    from app.orgs.service import get_by_code_or_raise
    from tests import factories

    with session_scope(application.state.sessionmaker) as session:
        unit = get_by_code_or_raise(session, "DEMO1")
        pregnancy = factories.make_pregnancy(session, unit=unit)
        _client, secret = factories.make_api_client(session, role="epr", organisation=unit)
        pregnancy_id = pregnancy.id
    with TestClient(application) as client:
        read = client.get(
            f"/api/v1/pregnancies/{pregnancy_id}", headers={"Authorization": f"Bearer {secret}"}
        )
        assert read.status_code == 200

    result = _run(env, "audit", "who-viewed", "--nhs-number", "-", stdin="943 476 5919\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    assert re.search(
        rf"allowed read\s+pregnancy:{pregnancy_id}\s+api_client:epr-client-\d+ \(epr\)", lines[0]
    )

    again = _run(env, "audit", "who-viewed", "--nhs-number", "9434765919")
    assert "audit_query" in again.stdout
    assert "cli:" in again.stdout

    bad = _run(env, "audit", "who-viewed", "--nhs-number", "1234567890")
    assert bad.returncode == 2
    assert "nhs_number" in bad.stderr
    assert "1234567890" not in bad.stderr
