"""``exhale oauth``: an operator registers an EPR's keys, rotates and revokes one."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

from fastapi.testclient import TestClient

from app.config import Settings
from app.main import create_app
from tests.app.oauth_helpers import TOKEN_URL, assertion, jwks, public_jwk, rsa_key, token_form
from tests.helpers import exhale_env, invoke_exhale, run_exhale

SEARCH = {"nhs_number": "9434765919"}


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return invoke_exhale("oauth", *args, env=env)


def _token(client: TestClient, signed: str) -> tuple[int, str]:
    response = client.post("/oauth2/token", data=token_form(signed))
    return response.status_code, response.json().get("access_token", "")


def test_operator_registers_rotates_and_revokes_an_eprs_keys(
    fresh_database_url: str, tmp_path: Path
) -> None:
    env = exhale_env(fresh_database_url)
    assert run_exhale("bootstrap", env=env).returncode == 0
    created = _run(
        env, "client", "create", "--name", "epr-jwt", "--role", "epr", "--organisation", "DEMO1"
    )
    assert created.returncode == 0, created.stderr
    assert "exh_" not in created.stdout + created.stderr  # no API key: signed JWTs only

    path = tmp_path / "jwks.json"
    path.write_text(jwks(public_jwk(rsa_key(), "key-1"), public_jwk(rsa_key("b"), "key-2")))
    added = _run(env, "key", "add", "--client", "epr-jwt", "--jwks", str(path))
    assert added.returncode == 0, added.stderr
    assert "Registered key key-1 for epr-jwt." in added.stdout
    again = _run(env, "key", "add", "--client", "epr-jwt", "--jwks", str(path))
    assert "Key key-2 was already registered" in again.stdout

    private = tmp_path / "private.json"
    private.write_text(json.dumps({"keys": [public_jwk(rsa_key(), "key-3", d="AQAB")]}))
    refused = _run(env, "key", "add", "--client", "epr-jwt", "--jwks", str(private))
    assert refused.returncode == 2
    assert "private key material" in refused.stderr
    assert "Traceback" not in refused.stderr
    missing = _run(env, "key", "add", "--client", "epr-jwt", "--jwks", str(tmp_path / "none"))
    assert missing.returncode == 2 and "cannot read the JWKS file" in missing.stderr
    unknown = _run(env, "key", "list", "--client", "nobody")
    assert unknown.stderr.strip() == "exhale: No API client is called 'nobody'."

    settings = Settings(database_url=fresh_database_url, oauth={"token_url": TOKEN_URL})
    with TestClient(create_app(settings)) as client:
        status, earlier = _token(client, assertion(rsa_key(), "epr-jwt"))
        assert status == 200
        bearer = {"Authorization": f"Bearer {earlier}"}
        assert client.get("/api/v1/pregnancies", params=SEARCH, headers=bearer).status_code == 200

        revoked = _run(env, "key", "revoke", "--client", "epr-jwt", "--kid", "key-1")
        assert revoked.returncode == 0, revoked.stderr
        assert client.get("/api/v1/pregnancies", params=SEARCH, headers=bearer).status_code == 401
        assert _token(client, assertion(rsa_key(), "epr-jwt"))[0] == 401
        assert _token(client, assertion(rsa_key("b"), "epr-jwt", kid="key-2"))[0] == 200

    listing = _run(env, "key", "list", "--client", "epr-jwt").stdout.splitlines()
    assert re.match(r"key-1\s+RSA\s+\S{43}\s+revoked \d{4}-\d\d-\d\d", listing[0])
    assert re.match(r"key-2\s+RSA\s+\S{43}\s+active$", listing[1])
    no_such = _run(env, "key", "revoke", "--client", "epr-jwt", "--kid", "key-9")
    assert no_such.returncode == 2 and "exhale oauth key list" in no_such.stderr
