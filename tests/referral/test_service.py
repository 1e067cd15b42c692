"""Recording a referral's events through the API and the advisor's page: the checks against her
pregnancy and today's date, and the messages people read."""

from __future__ import annotations

import datetime as dt
import re

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.clock import local_date, local_today
from app.config import Settings
from app.db import utcnow
from app.web.pages import long_date
from referral.models import Referral
from referral.service import policies_from
from tests.app.access_world import Side, build_side, headers_for, post_referral_event, sign_in

AFTER_BIRTH_QUIT = {"stage": "after_birth", "result": "co_confirmed_quit", "co_ppm": "3"}


@pytest.fixture
def side(session: Session) -> Side:
    return build_side(session)


def _at(session: Session, referral: Referral, status: str) -> Referral:
    referral.status = status
    if status != "engaged":
        referral.quit_date = local_today()
    session.flush()
    return referral


def _status(client: TestClient, headers: dict[str, str], referral_id: int) -> str:
    status: str = client.get(f"/api/v1/referrals/{referral_id}", headers=headers).json()["status"]
    return status


def _post_page(
    client: TestClient, referral: Referral, csrf: str, kind: str, **fields: str
) -> httpx.Response:
    response: httpx.Response = client.post(
        f"/referrals/{referral.id}",
        data={"csrf_token": csrf, "kind": kind, "version": str(referral.version), **fields},
        follow_redirects=False,
    )
    return response


def _date_fields(day: dt.date) -> dict[str, str]:
    return {
        "quit_date-day": str(day.day),
        "quit_date-month": str(day.month),
        "quit_date-year": str(day.year),
    }


def _error_links(page: str) -> list[str]:
    summary = page.split('class="error-summary__list"', 1)[1].split("</ul>", 1)[0]
    return re.findall(r'href="#([^"]+)"', summary)


# --- the API --------------------------------------------------------------------------------------


def test_an_after_birth_outcome_waits_for_the_birth_to_be_recorded(
    client: TestClient, session: Session, side: Side
) -> None:
    referral = _at(session, side.referral, "quit_date_set")
    service = headers_for(client, session, side, "service")
    outcome = {"kind": "outcome_check", **AFTER_BIRTH_QUIT, "co_ppm": 3}

    refused = post_referral_event(client, service, referral.id, **outcome)

    assert refused.status_code == 422, refused.text
    [problem] = refused.json()["fields"]
    assert problem["field"] == "stage"
    assert "record the birth first" in problem["message"]
    assert "/api/" not in problem["message"]
    assert f"/api/v1/pregnancies/{side.pregnancy.id}/birth" in refused.json()["detail"]
    assert _status(client, service, referral.id) == "quit_date_set"
    day_28 = {"kind": "outcome_check", "stage": "28_day", "result": "co_confirmed_quit"}
    assert post_referral_event(client, service, referral.id, **day_28, co_ppm=2).status_code == 201

    epr = headers_for(client, session, side, "epr")
    birth = {"born_on": local_today().isoformat(), "smoking_status_at_delivery": "non_smoker"}
    born = client.post(f"/api/v1/pregnancies/{side.pregnancy.id}/birth", json=birth, headers=epr)
    assert born.status_code == 200, born.text
    service = headers_for(client, session, side, "service")
    assert post_referral_event(client, service, referral.id, **outcome).status_code == 201
    assert _status(client, service, referral.id) == "completed"


def test_a_quit_date_more_than_90_days_ahead_is_refused(
    client: TestClient, session: Session, side: Side
) -> None:
    referral = _at(session, side.referral, "engaged")
    service = headers_for(client, session, side, "service")
    latest = local_today() + dt.timedelta(days=90)

    refused = post_referral_event(
        client,
        service,
        referral.id,
        kind="quit_date_set",
        quit_date=dt.date(2030, 1, 1).isoformat(),
    )

    assert refused.status_code == 422, refused.text
    assert refused.json()["fields"] == [
        {
            "field": "quit_date",
            "message": f"is 1 January 2030, more than 90 days from today: "
            f"choose {long_date(latest)} or earlier",
        }
    ]
    assert _status(client, service, referral.id) == "engaged"
    accepted = post_referral_event(
        client, service, referral.id, kind="quit_date_set", quit_date=str(latest)
    )
    assert accepted.status_code == 201, accepted.text


def test_how_far_ahead_a_quit_date_may_be_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert policies_from(Settings()).lifecycle.quit_date_max_days_ahead == 90
    monkeypatch.setenv("EXHALE_REFERRAL__QUIT_DATE_MAX_DAYS_AHEAD", "30")
    assert policies_from(Settings()).lifecycle.quit_date_max_days_ahead == 30


# --- the advisor's page ---------------------------------------------------------------------------


def test_the_page_refuses_an_after_birth_outcome_before_the_birth(
    client: TestClient, session: Session, side: Side
) -> None:
    csrf = sign_in(client, session, side.users["advisor"])
    referral = _at(session, side.referral, "quit_date_set")

    answer = _post_page(client, referral, csrf, "outcome_check", **AFTER_BIRTH_QUIT)

    assert answer.status_code == 422
    assert _error_links(answer.text) == ["outcome_check-stage"]
    assert (
        "The follow-up point is after the birth, but no birth is recorded for this pregnancy: "
        "record the birth first." in answer.text
    )
    assert "/api/" not in answer.text.split('class="error-summary__list"', 1)[1]
    session.refresh(referral)
    assert (referral.status, referral.closed_at) == ("quit_date_set", None)


def test_the_page_says_a_co_confirmed_quit_needs_the_reading(
    client: TestClient, session: Session, side: Side
) -> None:
    csrf = sign_in(client, session, side.users["advisor"])
    referral = _at(session, side.referral, "quit_date_set")

    answer = _post_page(
        client, referral, csrf, "outcome_check", stage="28_day", result="co_confirmed_quit"
    )

    assert answer.status_code == 422
    assert _error_links(answer.text) == ["outcome_check-co_ppm"]
    assert "The CO reading is needed for a CO-confirmed quit: enter it in ppm." in answer.text


def test_the_page_gives_quit_date_limits_as_dates_people_read(
    client: TestClient, session: Session, side: Side
) -> None:
    csrf = sign_in(client, session, side.users["advisor"])
    referral = _at(session, side.referral, "engaged")
    referral.opened_at = utcnow() - dt.timedelta(days=10)
    session.flush()
    opened_on = local_date(referral.opened_at)
    too_early = opened_on - dt.timedelta(days=1)
    too_late = local_today() + dt.timedelta(days=91)

    early = _post_page(client, referral, csrf, "quit_date_set", **_date_fields(too_early))
    late = _post_page(client, referral, csrf, "quit_date_set", **_date_fields(too_late))

    assert (early.status_code, late.status_code) == (422, 422)
    assert _error_links(early.text) == _error_links(late.text) == ["quit_date_set-quit_date-day"]
    assert (
        f"The quit date is {long_date(too_early)}, before the referral opened on "
        f"{long_date(opened_on)}: choose that day or later." in early.text
    )
    latest = local_today() + dt.timedelta(days=90)
    assert (
        f"The quit date is {long_date(too_late)}, more than 90 days from today: "
        f"choose {long_date(latest)} or earlier." in late.text
    )
