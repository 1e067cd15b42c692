"""Schemathesis against the API's own OpenAPI description, on a real server and database.

Every check runs (``ignored_auth`` included), with the stateful phase following the links it
infers between operations. Every role fuzzes the operations it may call, found by probing each
with its credential (API keys for machines, a web session for people), so routes added later
are fuzzed without listing them here. A failure prints schemathesis' report with a reproducing
``curl`` command.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy.orm import Session

from app import migrate
from app.config import AuthSettings, Settings
from app.db import make_engine
from app.identity import service as identity
from app.identity.models import WebSession
from tests import factories
from tests.server import running_server

# Cases per operation and phase; with the coverage phase's own cases, about two minutes in all.
MAX_EXAMPLES = int(os.environ.get("EXHALE_FUZZ_MAX_EXAMPLES", "15"))
SEED = os.environ.get("EXHALE_FUZZ_SEED", "20261126")
CONFIG = Path(__file__).with_name("schemathesis.toml")
CLIENT_ROLES = ("epr", "bridge", "service")
USER_ROLES = ("midwife", "lead", "admin", "advisor")


@dataclass
class Caller:
    role: str
    headers: dict[str, str]
    reachable: set[str] = field(default_factory=set)


def _world(database_url: str) -> list[Caller]:
    """A unit and its stop-smoking service, with a credential for every role."""
    engine = make_engine(database_url)
    callers = []
    with Session(engine) as session:
        service = factories.make_service(session)
        unit = factories.make_unit(session, service=service)
        pregnancy = factories.make_pregnancy(session, unit=unit)
        factories.make_referral(session, pregnancy=pregnancy, service=service)
        for role in CLIENT_ROLES:
            owner = service if role == "service" else unit
            _client, key = factories.make_api_client(session, role=role, organisation=owner)
            callers.append(Caller(role, {"Authorization": f"Bearer {key}"}))
        policy = identity.SessionPolicy(idle=dt.timedelta(hours=2), maximum=dt.timedelta(hours=2))
        for role in USER_ROLES:
            owner = service if role == "advisor" else unit
            user = factories.make_user(session, role=role, organisation=owner)
            token = identity.start_web_session(
                session, user=user, now=dt.datetime.now(dt.UTC), policy=policy
            )
            row = session.get(WebSession, identity.digest(token))
            assert row is not None
            cookie = f"exhale_session={token}"
            callers.append(Caller(role, {"Cookie": cookie, "X-CSRF-Token": row.csrf_token}))
        session.commit()
    engine.dispose()
    return callers


def _operations(schema: dict[str, Any], *, secured: bool) -> dict[str, tuple[str, str]]:
    """operationId -> (method, path) of the operations that do (or do not) declare a credential."""
    return {
        operation["operationId"]: (method.upper(), path)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if bool(operation.get("security")) is secured
    }


def _may_call(client: httpx.Client, caller: Caller, method: str, path: str) -> bool:
    """False only when the role check itself refuses the caller."""
    concrete = path
    while "{" in concrete:
        start, end = concrete.index("{"), concrete.index("}")
        concrete = concrete[:start] + "1" + concrete[end + 1 :]
    body = {} if method in {"POST", "PUT", "PATCH"} else None
    response = client.request(method, concrete, headers=caller.headers, json=body)
    refused = response.status_code == 403 and response.json().get("error") == "forbidden"
    return not refused


def _schemathesis(base_url: str, caller: Caller, operation_ids: set[str], workdir: Path) -> str:
    command = [
        os.path.join(os.path.dirname(sys.executable), "schemathesis"),
        f"--config-file={CONFIG}",
        "run",
        f"{base_url}/openapi.json",
        "--checks=all",
        "--phases=examples,coverage,fuzzing,stateful",
        f"--max-examples={MAX_EXAMPLES}",
        f"--seed={SEED}",
        "--generation-database=none",
        "--request-timeout=20",
        "--suppress-health-check=all",
        # The credential is the one given here, never one schemathesis makes up.
        "--generation-with-security-parameters=false",
        "--no-color",
        "--workers=1",
    ]
    for name, value in caller.headers.items():
        command += ["-H", f"{name}: {value}"]
    for operation_id in sorted(operation_ids):
        command += ["--include-operation-id", operation_id]
    # In a scratch folder: schemathesis keeps a cache of its findings where it runs.
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=600, check=False, cwd=workdir
    )
    report = f"--- schemathesis as {caller.role} ---\n{result.stdout}\n{result.stderr}"
    assert result.returncode == 0, report
    return report


def test_the_api_answers_fuzzed_requests_as_documented(
    fresh_database_url: str, tmp_path: Path
) -> None:
    migrate.upgrade(fresh_database_url)
    callers = _world(fresh_database_url)
    settings = Settings(
        database_url=fresh_database_url,
        log_level="ERROR",
        auth=AuthSettings(api_requests_per_minute=1_000_000),
    )
    started = time.monotonic()
    with running_server(settings) as base_url, httpx.Client(base_url=base_url) as client:
        schema = client.get("/openapi.json").json()
        operations = _operations(schema, secured=True)
        for caller in callers:
            caller.reachable = {
                op
                for op, (method, path) in operations.items()
                if _may_call(client, caller, method, path)
            }
        unreached = set(operations) - set().union(*(c.reachable for c in callers))
        assert not unreached, f"no role may call {sorted(unreached)}"
        callers[0].reachable |= set(_operations(schema, secured=False))
        for caller in callers:
            if caller.reachable:
                print(_schemathesis(base_url, caller, caller.reachable, tmp_path))
    print(f"fuzzing took {time.monotonic() - started:.0f} s")
