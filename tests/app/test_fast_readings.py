"""``POST /api/v1/readings`` by its PostgreSQL fast path writes and answers as the general path.

Each scenario is sent twice on the same data: through the fast path (``app.api.fast_readings``)
and through the general path alone (``app.readings.service``, the ORM). Every row each run added
(pregnancy, contact, reading, referral, event, outbox message, audit rows, measures' marks) and
every answer must be the same, ids and clock times aside. The fast path must also have answered
the requests it is meant for, and declined the rest.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app import migrate
from app.api import fast_readings
from app.clock import local_today
from app.config import Settings
from app.db import make_engine, utcnow
from app.identity import service as identity
from app.identity.models import ApiClient
from app.identity.principal import ActorType, Principal
from app.monitors.models import Monitor
from app.readings import combined, service
from app.readings.combined import Decline
from app.readings.schemas import ReadingCreate
from referral.models import ServiceArea
from tests import factories
from tests.app.access_world import Side, build_side, headers_for
from tests.app.readings_helpers import due_for, reading

pytestmark = pytest.mark.postgres

TODAY = local_today()
BOOKING_DAY = TODAY - dt.timedelta(days=190)
EDD = due_for(84, BOOKING_DAY)
AT_20_WEEKS = BOOKING_DAY + dt.timedelta(days=56)
AT_36_WEEKS = EDD - dt.timedelta(days=28)

TABLES = (
    "pregnancy",
    "contact",
    "co_reading",
    "referral",
    "referral_event",
    "outbox_message",
    "audit_event",
    "measure_mark",
)
# Chosen by the clock or at random in each run: compared by being there, not by value.
VARYING = {"created_at", "updated_at", "occurred_at", "opened_at", "next_attempt_at"}
VARYING |= {"webhook_id", "request_id", "first_contact_due_at"}
ID_COLUMNS = {
    "pregnancy_id": "pregnancy",
    "subject_pregnancy_id": "pregnancy",
    "contact_id": "contact",
    "referral_id": "referral",
}
RECORD_TABLES = {"pregnancy": "pregnancy", "reading": "co_reading", "referral": "referral"}

Step = Callable[[TestClient, dict[str, str], list[dict[str, Any]]], Any]


def post(body: dict[str, Any]) -> Step:
    def step(client: TestClient, headers: dict[str, str], _answers: list[dict[str, Any]]) -> Any:
        return client.post("/api/v1/readings", json=body, headers=headers)

    return step


def birth(on: dt.date) -> Step:
    def step(client: TestClient, headers: dict[str, str], answers: list[dict[str, Any]]) -> Any:
        pregnancy_id = answers[0]["pregnancy_id"]
        return client.post(
            f"/api/v1/pregnancies/{pregnancy_id}/birth",
            json={"born_on": on.isoformat(), "smoking_status_at_delivery": "non_smoker"},
            headers=headers,
        )

    return step


def nhs(n: int) -> str:
    """A valid synthetic NHS number (999 range) for scenario ``n``."""
    base = f"999{n:06d}"
    total = sum(int(d) * (10 - i) for i, d in enumerate(base))
    check = 11 - total % 11
    if check == 10:
        return nhs(n + 500)
    return base + ("0" if check == 11 else str(check))


# name: (steps, how many of the readings the fast path answers)
SCENARIOS: dict[str, tuple[list[Step], int]] = {
    "registers a smoker at 6 ppm and refers her": (
        [
            post(
                reading(
                    on=BOOKING_DAY, co_ppm=6, edd=EDD, smoking_status="smoker", nhs_number=nhs(1)
                )
            )
        ],
        1,
    ),
    "registers a non-smoker at 2 ppm, no referral": (
        [
            post(
                reading(
                    on=BOOKING_DAY,
                    co_ppm=2,
                    edd=EDD,
                    smoking_status="non_smoker",
                    nhs_number=nhs(2),
                )
            )
        ],
        1,
    ),
    "then a 36-week test below the threshold, and a second test that day": (
        [
            post(reading(on=BOOKING_DAY, co_ppm=1, edd=EDD, nhs_number=nhs(3))),
            post(
                reading(on=AT_36_WEEKS, co_ppm=2, nhs_number=nhs(3), very_brief_advice_given=True)
            ),
            post(reading(on=AT_36_WEEKS, co_ppm=3, nhs_number=nhs(3), source_id="second")),
        ],
        3,
    ),
    "a later test at 8 ppm refers her, routed by her stored postcode": (
        [
            post(reading(on=BOOKING_DAY, co_ppm=2, edd=EDD, nhs_number=nhs(4))),
            post(reading(on=AT_20_WEEKS, co_ppm=8, nhs_number=nhs(4), smoking_status="smoker")),
        ],
        2,
    ),
    "an open referral gains reasons through the general path": (
        [
            post(reading(on=BOOKING_DAY, co_ppm=6, edd=EDD, nhs_number=nhs(5))),
            post(reading(on=AT_20_WEEKS, co_ppm=9, nhs_number=nhs(5), smoking_status="smoker")),
        ],
        1,
    ),
    "declined and no monitor, stated contacts, a stop date": (
        [
            post(
                reading(
                    on=BOOKING_DAY,
                    co_ppm=None,
                    edd=EDD,
                    nhs_number=nhs(6),
                    outcome="declined",
                    smoking_status="ex_smoker",
                    stopped_smoking_on=(BOOKING_DAY - dt.timedelta(days=20)).isoformat(),
                )
            ),
            post(
                reading(
                    on=AT_36_WEEKS,
                    co_ppm=None,
                    nhs_number=nhs(6),
                    outcome="no_monitor",
                    contact="36_weeks",
                )
            ),
            post(reading(on=AT_20_WEEKS, co_ppm=1, nhs_number=nhs(6), contact="antenatal")),
        ],
        3,
    ),
    "a monitor past its calibration date": (
        [
            post(
                reading(
                    on=BOOKING_DAY, co_ppm=3, edd=EDD, nhs_number=nhs(7), device_serial="PB-OLD"
                )
            )
        ],
        1,
    ),
    "a postnatal test after the birth": (
        [
            post(reading(on=BOOKING_DAY, co_ppm=1, edd=EDD, nhs_number=nhs(8))),
            birth(TODAY - dt.timedelta(days=3)),
            post(reading(on=TODAY - dt.timedelta(days=1), co_ppm=5, nhs_number=nhs(8))),
        ],
        2,
    ),
    "refusals the general path explains": (
        [
            post(reading(on=BOOKING_DAY, co_ppm=2, nhs_number=nhs(9))),  # no pregnancy details
            post(reading(on=BOOKING_DAY, co_ppm=2, edd=EDD, nhs_number=nhs(9), contact="36_weeks")),
            post(reading(on=BOOKING_DAY, co_ppm=2, edd=EDD, nhs_number="9990000001")),
        ],
        0,
    ),
    "a re-send and a changed phone number go to the general path": (
        [
            post(reading(on=BOOKING_DAY, co_ppm=2, edd=EDD, nhs_number=nhs(10), source_id="s1")),
            post(reading(on=BOOKING_DAY, co_ppm=2, edd=EDD, nhs_number=nhs(10), source_id="s1")),
            post(
                reading(
                    on=AT_20_WEEKS,
                    co_ppm=2,
                    nhs_number=nhs(10),
                    pregnancy={"estimated_due_date": EDD.isoformat(), "phone": "07700 900999"},
                )
            ),
        ],
        1,
    ),
}


@pytest.fixture
def side(session: Session) -> Side:
    side = build_side(session)
    district_service = factories.make_service(session)
    session.add(
        ServiceArea(unit_id=side.unit.id, postcode_district="LS1", service_id=district_service.id)
    )
    session.add(
        Monitor(
            serial="PB-OLD",
            unit_id=side.unit.id,
            calibration_due_on=BOOKING_DAY - dt.timedelta(days=1),
        )
    )
    session.flush()
    return side


def _run(client: TestClient, headers: dict[str, str], steps: list[Step]) -> list[Any]:
    answers: list[dict[str, Any]] = []
    out = []
    for step in steps:
        response = step(client, headers, answers)
        out.append((response.status_code, response.json()))
        if response.status_code in (200, 201) and "pregnancy_id" in response.json():
            answers.append(response.json())
    return out


def _rows(connection: Connection, since: dict[str, int]) -> dict[str, list[dict[str, Any]]]:
    found = {}
    for table in TABLES:
        # A JSON column's SQL NULL and JSON null both read as None: say which it is.
        json_columns = connection.scalars(
            text(
                "SELECT column_name FROM information_schema.columns WHERE table_name = :table "
                "AND data_type = 'jsonb'"
            ),
            {"table": table},
        ).all()
        nulls = "".join(f", {c} IS NULL AS {c}_is_sql_null" for c in json_columns)
        rows = connection.execute(
            text(f"SELECT *{nulls} FROM {table} WHERE id > :since ORDER BY id"),
            {"since": since[table]},
        ).mappings()
        found[table] = [dict(row) for row in rows]
    return found


def _high_water(connection: Connection) -> dict[str, int]:
    return {
        t: connection.execute(text(f"SELECT coalesce(max(id), 0) FROM {t}")).scalar_one()
        for t in TABLES
    }


def _normalised(rows: dict[str, list[dict[str, Any]]], answers: list[Any]) -> Any:
    """Ids as their order within the run; clock times and random ids as present or not."""
    labels = {t: {row["id"]: f"{t}#{i}" for i, row in enumerate(rows[t])} for t in TABLES}

    def label(table: str, value: Any) -> Any:
        return labels[table].get(value, "earlier" if value is not None else None)

    def row_of(table: str, row: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in row.items():
            if key == "id":
                continue
            if key in VARYING:
                out[key] = value is not None
            elif key in ID_COLUMNS:
                out[key] = label(ID_COLUMNS[key], value)
            elif key == "record_id" and row.get("record_type") in RECORD_TABLES:
                out[key] = label(RECORD_TABLES[row["record_type"]], int(value))
            elif key == "payload":
                data = dict(value["data"])
                data["referral_id"] = label("referral", data["referral_id"])
                for moment in ("opened_at", "first_contact_due_at", "url"):
                    data[moment] = data[moment] is not None
                out[key] = {**value, "timestamp": True, "data": data}
            elif key == "data" and "reading_id" in value:
                out[key] = {**value, "reading_id": label("co_reading", value["reading_id"])}
            else:
                out[key] = value
        return out

    normal = {t: [row_of(t, row) for row in rows[t]] for t in TABLES}
    normal["measure_mark"] = sorted(normal["measure_mark"], key=str)
    said = []
    for status, body in answers:
        if status not in (200, 201):
            said.append((status, body))
        elif "outcome" not in body:
            said.append((status, "not a reading"))
        else:
            referral = body["referral"]
            if referral:
                referral = {**referral, "id": label("referral", referral["id"])}
            labelled = {
                **body,
                "id": label("co_reading", body["id"]),
                "pregnancy_id": label("pregnancy", body["pregnancy_id"]),
                "referral": referral,
            }
            said.append((status, labelled))
    return normal, said


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_fast_path_writes_and_answers_as_the_general_path(
    name: str,
    app: FastAPI,
    client: TestClient,
    connection: Connection,
    session: Session,
    side: Side,
) -> None:
    steps, answered_fast = SCENARIOS[name]
    headers = headers_for(client, session, side, "epr")
    fast = app.state.reading_transactions
    assert fast is not None
    registry = app.state.metrics_registry

    def served() -> float:
        """Readings the fast path answered, as /metrics reports them."""
        found = registry.get_sample_value("exhale_reading_posts_total", {"path": "fast"})
        return float(found or 0)

    before = _high_water(connection)
    savepoint = connection.begin_nested()
    counted = served()
    fast_answers = _run(client, headers, steps)
    assert served() - counted == answered_fast
    by_fast = _normalised(_rows(connection, before), fast_answers)
    savepoint.rollback()

    app.state.reading_transactions = None
    before = _high_water(connection)
    general_answers = _run(client, headers, steps)
    by_general = _normalised(_rows(connection, before), general_answers)
    app.state.reading_transactions = fast

    assert by_fast[1] == by_general[1]
    for table in TABLES:
        assert by_fast[0][table] == by_general[0][table], table
    assert any(status == 201 for status, _ in fast_answers) or answered_fast == 0


def test_a_wrong_guess_at_the_keys_unit_costs_a_lookup_not_a_wrong_reading(
    app: FastAPI, client: TestClient, session: Session, side: Side
) -> None:
    """The fast path sends the lookup with the key's statement, for the unit and client it last
    saw the key with. Here that guess names another unit, where a woman with the same NHS number
    is registered too: the key's own row decides, and the reading goes to her pregnancy at the
    key's unit."""
    headers = headers_for(client, session, side, "epr")
    other = build_side(session)  # the same NHS number, registered at another unit
    digest = identity.digest(side.keys["epr"])
    fast_readings._KEYS[digest] = (other.unit.id, _epr_client(session, other))
    registry = app.state.metrics_registry
    before = registry.get_sample_value("exhale_reading_posts_total", {"path": "fast"}) or 0
    body = reading(
        on=TODAY, co_ppm=1, smoking_status="non_smoker", nhs_number=side.pregnancy.nhs_number
    )

    answer = client.post("/api/v1/readings", json=body, headers=headers)

    assert answer.status_code == 201, answer.text
    assert answer.json()["pregnancy_id"] == side.pregnancy.id
    after = registry.get_sample_value("exhale_reading_posts_total", {"path": "fast"})
    assert after == before + 1
    assert fast_readings._KEYS[digest] == (side.unit.id, _epr_client(session, side))


def test_a_recording_looked_up_for_one_sender_is_not_written_for_another(
    settings: Settings,
) -> None:
    """What the lookup found belongs to the unit it looked at: written for any other sender, the
    recording declines before it sends anything."""

    class NoDatabase:
        async def run(self, *statements: Any, commit: bool = False) -> list[Any]:
            raise AssertionError("nothing may be sent")

    posted = reading(on=BOOKING_DAY, co_ppm=1, edd=EDD, nhs_number=nhs(91))
    body = ReadingCreate.model_validate(posted)
    recording = combined.Recording(
        unit_id=1, client_id=2, body=body, nhs_number=nhs(91), settings=settings, now=utcnow()
    )
    # A woman not registered at unit 1: for its own sender, the recording would write her.
    found = SimpleNamespace(
        resent=None,
        id=None,
        new_pregnancy=10,
        new_contact=11,
        new_reading=12,
        new_referral=None,
        calibration_due=None,
        service_id=None,
        service_code=None,
    )
    with pytest.raises(AssertionError, match="nothing may be sent"):
        own = Principal(ActorType.api_client, 2, "epr", "epr", 1)
        asyncio.run(recording.write(NoDatabase(), found, principal=own, unit_code="U"))
    for unit_id, client_id in ((3, 2), (1, 4)):
        sender = Principal(ActorType.api_client, client_id, "epr", "epr", unit_id)
        with pytest.raises(Decline):
            asyncio.run(recording.write(NoDatabase(), found, principal=sender, unit_code="U"))


def _epr_client(session: Session, side: Side) -> int:
    return session.scalars(
        select(ApiClient.id).where(
            ApiClient.organisation_id == side.unit.id, ApiClient.role == "epr"
        )
    ).one()


@pytest.fixture
def committed(fresh_database_url: str) -> Iterator[tuple[str, Principal, str]]:
    """A migrated database with a unit and an EPR key, committed: (url, principal, key)."""
    migrate.upgrade(fresh_database_url)
    engine = make_engine(fresh_database_url)
    with Session(engine) as setup:
        unit = factories.make_unit(setup, service=factories.make_service(setup))
        client, key = factories.make_api_client(setup, role="epr", organisation=unit)
        principal = Principal(ActorType.api_client, client.id, client.name, "epr", unit.id)
        setup.commit()
    yield fresh_database_url, principal, key
    engine.dispose()


Lock = Callable[[Connection], object]


def _waits(url: str, holder: Lock, waiter: Lock) -> bool:
    """Whether ``waiter`` waits for the locks ``holder`` holds in another transaction."""
    engine = make_engine(url)
    try:
        with engine.connect() as holding, engine.connect() as waiting:
            holding.begin()
            holder(holding)
            waiting.begin()
            waiting.exec_driver_sql("SET LOCAL lock_timeout = '200ms'")
            try:
                waiter(waiting)
            except DBAPIError as error:
                assert isinstance(error.orig, psycopg.errors.LockNotAvailable), error
                return True
            return False
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("nhs_number", "source_id", "waits"),
    [
        ("9990000018", None, True),  # the same woman
        ("9990000026", "obs-1", True),  # another woman, the same source id
        ("9990000026", "obs-2", False),  # neither
    ],
)
def test_the_fast_path_and_the_general_path_wait_for_each_others_locks(
    committed: tuple[str, Principal, str], nhs_number: str, source_id: str | None, waits: bool
) -> None:
    """So that the two paths never record one reading twice, or register her twice."""
    url, principal, key = committed

    def general(nhs: str, source: str | None) -> Lock:
        return lambda c: c.execute(*service.lock_statement(principal, nhs, source))

    def fast(nhs: str, source: str | None) -> Lock:
        keys = {
            "digest": identity.digest(key),
            "woman": service.woman_lock_key(nhs),
            "source_id": source,
        }
        return lambda c: c.exec_driver_sql(
            fast_readings._CLIENT_AND_LOCKS[source is not None], keys
        ).one()

    held = ("9990000018", "obs-1")
    assert _waits(url, general(*held), fast(nhs_number, source_id)) is waits
    assert _waits(url, fast(*held), general(nhs_number, source_id)) is waits
