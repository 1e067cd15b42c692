"""The reading request's statements sent by hand, for ``bench_ceiling.py``: not the app.

Each ASGI app here answers ``POST /api/v1/readings`` for a new woman at 6 ppm (the request
``bench_ingest.py`` sends) with the same 15 statements the app sends for it (``round_trips.py``):
the API key, the two advisory locks, the re-send check, the pregnancy lookup, the pregnancy,
contact, routing, referral, reading, three audit rows in one INSERT, event, outbox message,
``pg_notify`` and the measures mark, in one transaction. The body is validated by the app's own
``ReadingCreate`` and the answer serialised by its ``ReadingRead``. No rules, no checks beyond
those: what it shows is what the request's database work costs through each stack.

- ``raw``: a bare ASGI callable, psycopg's async connections (8 per process).
- ``fastapi``: FastAPI, an ``async def`` endpoint, the same psycopg connections.
- ``core``: FastAPI, a ``def`` endpoint (run in its thread pool, as the app's is), SQLAlchemy
  Core ``text()`` statements on a pooled engine (no ORM).
- ``fastapi_combined`` and ``core_combined``: as ``fastapi`` and ``core``, but the same rows in
  four statements (``COMBINED``): the API key, the locks, one lookup that also takes the new
  rows' ids from their sequences, and one INSERT of every row through data-modifying CTEs.

Served by ``uvicorn bench.ceiling_app:<name>`` with ``CEILING_DATABASE_URL`` set.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import re
import uuid
import zlib
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
from typing import Any

import psycopg
from fastapi import FastAPI, Header, Response
from sqlalchemy import Engine, create_engine, text

from app.readings.schemas import AdviceRead, ReadingCreate, ReadingRead, ReferralSummary

URL = os.environ.get("CEILING_DATABASE_URL", "")
REASONS = ["co_elevated", "self_reported_smoker"]
ADVICE = [{"code": "referral_made", "text": "Tell her: " + "x" * 400}]

STATEMENTS = {
    "auth": "SELECT api_client.id, api_client.name, api_client.role, api_client.organisation_id, "
    "api_client.revoked_at, organisation.kind FROM api_client JOIN organisation ON "
    "organisation.id = api_client.organisation_id WHERE api_client.secret_digest = %(digest)s",
    "lock": "SELECT pg_advisory_xact_lock(%(unit)s, %(woman)s), pg_advisory_xact_lock(%(source)s)",
    "resent": "SELECT id, pregnancy_id, contact_id, measured_at, co_ppm, referral_id, advice FROM "
    "co_reading WHERE api_client_id = %(client)s AND source_id = %(source_id)s",
    "current": "SELECT id, unit_id, nhs_number, given_name, family_name, date_of_birth, phone, "
    "postcode, estimated_due_date, born_on FROM pregnancy WHERE unit_id = %(unit)s AND "
    "nhs_number = %(nhs)s AND estimated_due_date >= %(on)s",
    "pregnancy": "INSERT INTO pregnancy (unit_id, nhs_number, given_name, family_name, "
    "date_of_birth, phone, postcode, estimated_due_date, created_at, updated_at) VALUES (%(unit)s, "
    "%(nhs)s, %(given)s, %(family)s, %(born)s, %(phone)s, %(postcode)s, %(edd)s, %(now)s, "
    "%(now)s) RETURNING id",
    "contact": "INSERT INTO contact (pregnancy_id, kind, occurred_on, gestation_days, created_at) "
    "VALUES (%(pregnancy)s, 'booking', %(on)s, 84, %(now)s) RETURNING id",
    "route": "SELECT organisation.id, organisation.code FROM organisation WHERE organisation.id = "
    "coalesce((SELECT service_area.service_id FROM service_area WHERE service_area.unit_id = "
    "%(unit)s AND service_area.postcode_district = %(district)s), (SELECT default_service_id "
    "FROM organisation WHERE id = %(unit)s))",
    "referral": "INSERT INTO referral (pregnancy_id, service_id, status, reasons, policy_version, "
    "opened_at, first_contact_due_at, version, updated_at, failed_contact_attempts) VALUES "
    "(%(pregnancy)s, %(service)s, 'pending', %(reasons)s, 'r1', %(now)s, %(now)s, 1, %(now)s, 0) "
    "RETURNING id",
    "reading": "INSERT INTO co_reading (pregnancy_id, contact_id, measured_at, outcome, co_ppm, "
    "smoking_status, source_id, api_client_id, created_at, referral_id, advice, policy_version) "
    "VALUES (%(pregnancy)s, %(contact)s, %(measured_at)s, 'measured', %(co_ppm)s, 'smoker', "
    "%(source_id)s, %(client)s, %(now)s, %(referral)s, %(advice)s, 'r1') RETURNING id",
    "audit": "INSERT INTO audit_event (occurred_at, actor_type, actor_id, actor_name, role, "
    "organisation_id, action, record_type, record_id, outcome, subject_pregnancy_id) VALUES "
    + ", ".join(
        f"(%(now)s, 'api_client', %(client)s, %(client_name)s, 'epr', %(unit)s, 'create', "
        f"'{kind}', %({kind})s, 'allowed', %(pregnancy)s)"
        for kind in ("pregnancy", "referral", "reading")
    ),
    "event": "INSERT INTO referral_event (referral_id, kind, data, actor_type, actor_id, "
    "actor_name, occurred_at, created_at) VALUES (%(referral)s, 'created', %(event)s, "
    "'api_client', %(client)s, %(client_name)s, %(now)s, %(now)s)",
    "outbox": "INSERT INTO outbox_message (service_id, referral_id, event_type, webhook_id, "
    "payload, status, attempts, next_attempt_at, created_at) VALUES (%(service)s, %(referral)s, "
    "'referral.created', %(webhook)s, %(payload)s, 'pending', 0, %(now)s, %(now)s)",
    "notify": "SELECT pg_notify('exhale_outbox', '')",
    "mark": "INSERT INTO measure_mark (unit_id, month) VALUES (%(unit)s, %(month)s)",
}

# The same rows in four statements: the API key; the locks (alone, so that what follows reads
# under them); one lookup (the re-send check, the current pregnancy, the route, and the ids the
# new rows take from their sequences); and one INSERT of every row through data-modifying CTEs.
_NEW_ROWS = {
    "pregnancy": "pregnancy",
    "contact": "contact",
    "referral": "referral",
    "reading": "co_reading",
}


def _with_its_id(name: str) -> str:
    table = _NEW_ROWS[name]
    return (
        STATEMENTS[name]
        .removesuffix(" RETURNING id")
        .replace(f"INSERT INTO {table} (", f"INSERT INTO {table} (id, ", 1)
        .replace("VALUES (", f"VALUES (%({name})s, ", 1)
    )


COMBINED = {
    "auth": STATEMENTS["auth"],
    "lock": STATEMENTS["lock"],
    "lookup": "SELECT (SELECT id FROM co_reading WHERE api_client_id = %(client)s AND source_id = "
    "%(source_id)s), (SELECT id FROM pregnancy WHERE unit_id = %(unit)s AND nhs_number = %(nhs)s "
    "AND estimated_due_date >= %(on)s LIMIT 1), ("
    + STATEMENTS["route"].replace("organisation.id, organisation.code", "organisation.id", 1)
    + "), "
    + ", ".join(f"nextval(pg_get_serial_sequence('{t}', 'id'))" for t in _NEW_ROWS.values()),
    "write": "WITH "
    + ", ".join(f"new_{name} AS ({_with_its_id(name)})" for name in _NEW_ROWS)
    + ", "
    + ", ".join(f"new_{name} AS ({STATEMENTS[name]})" for name in ("audit", "event", "outbox"))
    + f", new_mark AS ({STATEMENTS['mark']}) SELECT pg_notify('exhale_outbox', '')",
}

Execute = Callable[[str, dict[str, Any]], Awaitable[Any]]
Shape = Callable[[dict[str, Any], Execute, Execute], Coroutine[Any, Any, None]]


def _parameters(body: ReadingCreate, api_key: str) -> dict[str, Any]:
    assert body.pregnancy is not None and body.measured_at is not None
    now = dt.datetime.now(dt.UTC)
    details = body.pregnancy
    return {
        "digest": hashlib.sha256(api_key.encode()).hexdigest(),
        "woman": zlib.crc32(body.nhs_number.encode()) - 2**31,
        "nhs": body.nhs_number,
        "now": now,
        "on": now.date(),
        "month": f"{now.year:04d}-{now.month:02d}",
        "source_id": body.source_id,
        "measured_at": body.measured_at,
        "co_ppm": body.co_ppm,
        "given": details.given_name,
        "family": details.family_name,
        "born": details.date_of_birth,
        "phone": details.phone,
        "postcode": details.postcode,
        "edd": details.estimated_due_date,
        "district": (details.postcode or "").split(" ")[0],
        "reasons": json.dumps(REASONS),
        "advice": json.dumps(ADVICE),
        "webhook": f"msg_{uuid.uuid4().hex}",
    }


async def _authenticate(p: dict[str, Any], one: Execute) -> None:
    client = await one("auth", p)
    p.update(client=client[0], client_name=client[1], unit=client[3])
    sender = f"api_client:{client[0]}:{p['source_id']}".encode()
    p["source"] = int.from_bytes(
        hashlib.blake2b(sender, digest_size=8).digest(), "big", signed=True
    )


def _event_and_payload(p: dict[str, Any]) -> None:
    p["event"] = json.dumps({"reasons": REASONS, "reading_id": p["reading"]})
    p["payload"] = json.dumps({"type": "referral.created", "data": {"given_name": p["given"]}})


async def one_by_one(p: dict[str, Any], one: Execute, run: Execute) -> None:
    """The app's 15 statements in its order; ``one`` returns the first row, ``run`` nothing."""
    await _authenticate(p, one)
    await run("lock", p)
    if await one("resent", p) is not None:
        raise RuntimeError("every request here is new")
    await one("current", p)
    p["pregnancy"] = (await one("pregnancy", p))[0]
    p["contact"] = (await one("contact", p))[0]
    p["service"] = (await one("route", p))[0]
    p["referral"] = (await one("referral", p))[0]
    p["reading"] = (await one("reading", p))[0]
    await run("audit", p)
    _event_and_payload(p)
    for name in ("event", "outbox", "notify", "mark"):
        await run(name, p)


async def combined(p: dict[str, Any], one: Execute, run: Execute) -> None:
    """The same rows in ``COMBINED``'s four statements."""
    await _authenticate(p, one)
    await run("lock", p)
    found = await one("lookup", p)
    if found[0] is not None:
        raise RuntimeError("every request here is new")
    p["service"], p["pregnancy"], p["contact"], p["referral"], p["reading"] = found[2:]
    _event_and_payload(p)
    await run("write", p)


def _answer(p: dict[str, Any]) -> ReadingRead:
    return ReadingRead(
        id=p["reading"],
        pregnancy_id=p["pregnancy"],
        contact="booking",
        gestation_days=84,
        measured_at=p["measured_at"],
        outcome="measured",
        co_ppm=p["co_ppm"],
        smoking_status="smoker",
        stopped_smoking_on=None,
        very_brief_advice_given=None,
        device_serial=None,
        source_id=p["source_id"],
        referral=ReferralSummary(id=p["referral"], status="pending", reasons=REASONS),
        advice=[AdviceRead(**item) for item in ADVICE],
        calibration_warning=None,
    )


class _Connections:
    """A process's psycopg async connections, each used by one request at a time."""

    def __init__(self, shape: Shape, statements: dict[str, str], size: int = 8) -> None:
        self._shape = shape
        self._statements = statements
        self._size = size
        self._idle: asyncio.Queue[psycopg.AsyncConnection[Any]] | None = None

    async def record(self, body: ReadingCreate, api_key: str) -> ReadingRead:
        if self._idle is None:
            self._idle = asyncio.Queue()
            for _ in range(self._size):
                self._idle.put_nowait(await psycopg.AsyncConnection.connect(URL))
        p = _parameters(body, api_key)
        connection = await self._idle.get()
        try:
            async with connection.transaction():
                cursor = connection.cursor()

                async def one(name: str, p: dict[str, Any]) -> Any:
                    return await (await cursor.execute(self._statements[name], p)).fetchone()

                async def run(name: str, p: dict[str, Any]) -> None:
                    await cursor.execute(self._statements[name], p)

                await self._shape(p, one, run)
        finally:
            self._idle.put_nowait(connection)
        return _answer(p)


SHAPES: dict[str, tuple[Shape, dict[str, str]]] = {
    "one_by_one": (one_by_one, STATEMENTS),
    "combined": (combined, COMBINED),
}
CONNECTIONS = {name: _Connections(*shape) for name, shape in SHAPES.items()}


async def raw(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
    send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    api_key = dict(scope["headers"]).get(b"authorization", b"").decode()[len("Bearer ") :]
    body = ReadingCreate.model_validate_json(b"".join(chunks))
    answer = (await CONNECTIONS["one_by_one"].record(body, api_key)).model_dump_json().encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 201, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


def _async_app(connections: _Connections) -> FastAPI:
    app = FastAPI()

    @app.post("/api/v1/readings", status_code=201)
    async def reading(body: ReadingCreate, authorization: str = Header()) -> Response:
        answer = await connections.record(body, authorization[len("Bearer ") :])
        return Response(answer.model_dump_json(), status_code=201, media_type="application/json")

    return app


fastapi = _async_app(CONNECTIONS["one_by_one"])
fastapi_combined = _async_app(CONNECTIONS["combined"])

_ENGINES: list[Engine] = []
_TEXTS = {
    name: {k: text(re.sub(r"%\((\w+)\)s", r":\1", v)) for k, v in statements.items()}
    for name, (_, statements) in SHAPES.items()
}


def record_with_core(shape_name: str, body: ReadingCreate, api_key: str) -> ReadingRead:
    """The shape's statements through SQLAlchemy Core on a pooled engine, in one transaction."""
    if not _ENGINES:
        url = URL.replace("postgresql://", "postgresql+psycopg://", 1)
        _ENGINES.append(create_engine(url, pool_size=10))
    shape, compiled = SHAPES[shape_name][0], _TEXTS[shape_name]
    p = _parameters(body, api_key)
    with _ENGINES[0].begin() as connection:

        async def one(name: str, p: dict[str, Any]) -> Any:
            return connection.execute(compiled[name], p).first()

        async def run(name: str, p: dict[str, Any]) -> None:
            connection.execute(compiled[name], p)

        # The shape awaits nothing that suspends here: every statement runs synchronously.
        try:
            shape(p, one, run).send(None)
        except StopIteration:
            pass
        else:
            raise RuntimeError("a statement suspended the shape's coroutine")
    return _answer(p)


def _core_app(shape_name: str) -> FastAPI:
    app = FastAPI()

    @app.post("/api/v1/readings", status_code=201)
    def reading(body: ReadingCreate, authorization: str = Header()) -> Response:
        answer = record_with_core(shape_name, body, authorization[len("Bearer ") :])
        return Response(answer.model_dump_json(), status_code=201, media_type="application/json")

    return app


core = _core_app("one_by_one")
core_combined = _core_app("combined")
