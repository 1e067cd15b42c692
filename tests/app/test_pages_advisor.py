"""The advisor's pages: the queue in the order she works it, a referral worked to a quit date."""

from __future__ import annotations

import datetime as dt
import re

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.models import AuditEvent
from app.clock import local_date
from app.db import utcnow
from referral.models import Referral
from tests import factories
from tests.app.access_world import Side, build_side, sign_in


@pytest.fixture
def side(session: Session) -> Side:
    return build_side(session)


@pytest.fixture
def csrf(client: TestClient, session: Session, side: Side) -> str:
    return sign_in(client, session, side.users["advisor"])


def _error_links(page: str) -> list[str]:
    summary = page.split('class="error-summary__list"', 1)[1].split("</ul>", 1)[0]
    return re.findall(r'href="#([^"]+)"', summary)


def _referral(session: Session, side: Side, *, name: str, due_in_hours: float) -> Referral:
    pregnancy = factories.make_pregnancy(session, unit=side.unit, nhs_number="9990000069")
    pregnancy.given_name = name
    referral = factories.make_referral(session, pregnancy=pregnancy, service=side.service)
    referral.first_contact_due_at = utcnow() + dt.timedelta(hours=due_in_hours)
    session.flush()
    return referral


def _post(
    client: TestClient, referral: Referral, csrf: str, kind: str, **fields: str
) -> httpx.Response:
    return client.post(
        f"/referrals/{referral.id}",
        data={"csrf_token": csrf, "kind": kind, "version": str(referral.version), **fields},
        follow_redirects=False,
    )


def test_the_queue_lists_overdue_first_contacts_first_then_by_due_time(
    client: TestClient, session: Session, side: Side, csrf: str
) -> None:
    side.referral.first_contact_due_at = utcnow() + dt.timedelta(hours=30)
    _referral(session, side, name="Later", due_in_hours=50)
    _referral(session, side, name="Overdue", due_in_hours=-2)
    _referral(session, side, name="Soonest", due_in_hours=3)

    page = client.get("/queue")

    assert page.status_code == 200
    order = re.findall(r'<a href="/referrals/\d+">(\w+)', page.text)
    assert order == ["Overdue", "Soonest", "Jane", "Later"]
    overdue = page.text.split('id="overdue"')[1].split('id="rest"')[0]
    assert "Overdue" in overdue and "tag--red" in overdue
    searched = session.scalars(select(AuditEvent).where(AuditEvent.action == "search")).all()
    assert len(searched) == 4


def test_the_advisor_records_a_contact_an_assessment_and_a_quit_date(
    client: TestClient, session: Session, side: Side, csrf: str
) -> None:
    referral = side.referral
    page = client.get(f"/referrals/{referral.id}")
    assert page.status_code == 200
    assert 'href="tel:07700900123"' in page.text
    assert '<details class="details" id="contact_attempt" open>' in page.text

    answer = _post(client, referral, csrf, "contact_attempt", reached="yes", note="Called at 10")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/referrals/{referral.id}#timeline"
    session.refresh(referral)
    assert referral.status == "contacted"

    assert _post(client, referral, csrf, "assessment").status_code == 303
    session.refresh(referral)

    wrong = client.post(
        f"/referrals/{referral.id}",
        data={
            "csrf_token": csrf,
            "kind": "quit_date_set",
            "version": str(referral.version),
            "quit_date-day": "30",
            "quit_date-month": "2",
            "quit_date-year": "2027",
            "note": "Keep this note",
        },
    )
    assert wrong.status_code == 422
    assert _error_links(wrong.text) == ["quit_date_set-quit_date-day"]
    assert '<details class="details" id="quit_date_set" open>' in wrong.text
    assert 'value="30"' in wrong.text and "Keep this note" in wrong.text

    quit_on = local_date(utcnow()) + dt.timedelta(days=7)
    done = _post(
        client,
        referral,
        csrf,
        "quit_date_set",
        **{
            "quit_date-day": str(quit_on.day),
            "quit_date-month": str(quit_on.month),
            "quit_date-year": str(quit_on.year),
        },
    )
    assert done.status_code == 303
    session.refresh(referral)
    assert (referral.status, referral.quit_date) == ("quit_date_set", quit_on)
    timeline = client.get(f"/referrals/{referral.id}").text.split('id="timeline"')[1]
    assert timeline.index("Quit date set") < timeline.index("Contact attempt")
    assert "Spoke to her" in timeline and "Called at 10" in timeline


def test_a_stale_form_is_a_conflict_that_keeps_what_was_typed(
    client: TestClient, session: Session, side: Side, csrf: str
) -> None:
    referral = side.referral
    stale = str(referral.version)
    _post(client, referral, csrf, "contact_attempt", reached="no")
    answer = client.post(
        f"/referrals/{referral.id}",
        data={
            "csrf_token": csrf,
            "kind": "contact_attempt",
            "version": stale,
            "reached": "yes",
            "note": "Second call",
        },
    )
    assert answer.status_code == 409
    assert _error_links(answer.text) == ["contact_attempt-reached"]
    assert "Someone else changed this referral" in answer.text
    assert "Second call" in answer.text


def test_an_outcome_the_reading_contradicts_is_shown_on_the_co_field(
    client: TestClient, session: Session, side: Side, csrf: str
) -> None:
    referral = side.referral
    referral.status = "quit_date_set"
    referral.quit_date = local_date(utcnow())
    session.flush()
    answer = _post(
        client,
        referral,
        csrf,
        "outcome_check",
        stage="28_day",
        result="co_confirmed_quit",
        co_ppm="14",
    )
    assert answer.status_code == 422
    assert _error_links(answer.text) == ["outcome_check-co_ppm"]
    assert "does not confirm a quit" in answer.text


def test_another_services_referral_is_not_found(
    client: TestClient, session: Session, side: Side, csrf: str
) -> None:
    other = build_side(session)
    page = client.get(f"/referrals/{other.referral.id}")
    assert page.status_code == 404
    assert "Testpatient" not in page.text
    assert client.get("/worklist").status_code == 403
