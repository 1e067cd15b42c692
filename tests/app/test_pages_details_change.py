"""Changing her details (due date, names, date of birth, phone, postcode) on the midwife's pages,
and the result panel's warning when the stop-smoking service has no number to phone her on."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.models import AuditEvent
from app.clock import local_today
from app.pregnancies.models import Contact, Pregnancy
from app.readings.models import Reading
from tests import factories
from tests.app.access_world import Side, build_side, denied_on_pregnancy, sign_in
from tests.app.test_pages_midwife import _error_links, _test_form

STORED = ("estimated_due_date", "given_name", "family_name", "date_of_birth", "phone", "postcode")


@pytest.fixture
def side(session: Session) -> Side:
    return build_side(session)  # Jane Testpatient, 07700 900123, LS1 4AP, at 25+5 weeks today


@pytest.fixture
def csrf(client: TestClient, session: Session, side: Side) -> str:
    return sign_in(client, session, side.users["midwife"])


def _date(name: str, day: dt.date) -> dict[str, str]:
    return {
        f"{name}-day": str(day.day),
        f"{name}-month": str(day.month),
        f"{name}-year": str(day.year),
    }


def _form(csrf: str, pregnancy: Pregnancy, **changed: str) -> dict[str, str]:
    """The form as it comes prefilled from her record, with some fields changed."""
    assert pregnancy.date_of_birth is not None
    form = {
        "csrf_token": csrf,
        **_date("estimated_due_date", pregnancy.estimated_due_date),
        **_date("date_of_birth", pregnancy.date_of_birth),
        "given_name": pregnancy.given_name or "",
        "family_name": pregnancy.family_name or "",
        "phone": pregnancy.phone or "",
        "postcode": pregnancy.postcode or "",
    }
    return {**form, **changed}


def _stored(session: Session, pregnancy: Pregnancy) -> dict[str, Any]:
    session.expire_all()
    fresh = session.get(Pregnancy, pregnancy.id)
    assert fresh is not None
    return {name: getattr(fresh, name) for name in STORED}


def _updates(session: Session, pregnancy: Pregnancy) -> list[Any]:
    """The fields each allowed update of her pregnancy changed, as the audit trail names them."""
    rows = session.scalars(
        select(AuditEvent)
        .where(
            AuditEvent.action == "update",
            AuditEvent.outcome == "allowed",
            AuditEvent.record_type == "pregnancy",
            AuditEvent.subject_pregnancy_id == pregnancy.id,
        )
        .order_by(AuditEvent.id)
    )
    return [row.detail["fields"] for row in rows if row.detail]


def test_the_midwife_changes_the_due_date_and_phone_and_sees_them_on_her_record(
    client: TestClient, session: Session, side: Side, csrf: str
) -> None:
    url = f"/pregnancies/{side.pregnancy.id}/details"
    record = client.get(f"/pregnancies/{side.pregnancy.id}")
    assert f'href="{url}"' in record.text and "Change her details" in record.text

    form = client.get(url)
    assert form.status_code == 200
    assert "<h1>Change her details</h1>" in form.text
    assert "NHS number 943 476 5919" in form.text and 'name="nhs_number"' not in form.text
    for shown in ('value="Jane"', 'value="Testpatient"', 'value="07700 900123"', 'value="LS1 4AP"'):
        assert shown in form.text
    due = side.pregnancy.estimated_due_date
    assert f'name="estimated_due_date-day" type="text" inputmode="numeric" value="{due.day}"' in (
        form.text
    )
    assert 'name="date_of_birth-year" type="text" inputmode="numeric" value="1995"' in form.text

    revised = due + dt.timedelta(days=9)  # the dating scan moves it on
    before = _stored(session, side.pregnancy)
    saved = client.post(
        url,
        data=_form(
            csrf, side.pregnancy, phone="07700 900456", **_date("estimated_due_date", revised)
        ),
        follow_redirects=False,
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == f"/pregnancies/{side.pregnancy.id}"
    assert _stored(session, side.pregnancy) == {
        **before,
        "estimated_due_date": revised,
        "phone": "07700 900456",
    }
    assert _updates(session, side.pregnancy) == [["estimated_due_date", "phone"]]

    shown = client.get(saved.headers["location"])
    assert f"{revised:%-d %B %Y}" in shown.text
    assert "07700 900456" in shown.text and "07700 900123" not in shown.text


def test_clearing_an_optional_field_removes_it_and_an_unchanged_form_changes_nothing(
    client: TestClient, session: Session, side: Side, csrf: str
) -> None:
    url = f"/pregnancies/{side.pregnancy.id}/details"
    unchanged = client.post(url, data=_form(csrf, side.pregnancy), follow_redirects=False)
    assert unchanged.status_code == 303
    assert _updates(session, side.pregnancy) == []

    cleared = client.post(
        url,
        data=_form(
            csrf,
            side.pregnancy,
            phone=" ",
            postcode="",
            given_name="",
            **{"date_of_birth-day": "", "date_of_birth-month": "", "date_of_birth-year": ""},
        ),
    )
    assert cleared.status_code == 200  # followed to her record
    stored = _stored(session, side.pregnancy)
    assert [stored[name] for name in ("given_name", "date_of_birth", "phone", "postcode")] == [
        None,
        None,
        None,
        None,
    ]
    assert stored["family_name"] == "Testpatient"
    assert _updates(session, side.pregnancy) == [
        ["given_name", "date_of_birth", "phone", "postcode"]
    ]
    assert cleared.text.count("Not recorded") == 3  # date of birth, phone, postcode


def test_a_wrong_phone_or_due_date_is_shown_on_its_field_and_nothing_is_stored(
    client: TestClient, session: Session, side: Side, csrf: str
) -> None:
    url = f"/pregnancies/{side.pregnancy.id}/details"
    before = _stored(session, side.pregnancy)
    later = side.pregnancy.estimated_due_date + dt.timedelta(days=7)

    phone = client.post(
        url,
        data=_form(csrf, side.pregnancy, phone="not a phone", **_date("estimated_due_date", later)),
    )
    assert phone.status_code == 422
    assert _error_links(phone.text) == ["phone"]
    assert "Phone number: use 5 to 32 digits" in phone.text
    assert 'value="not a phone"' in phone.text and f'value="{later.day}"' in phone.text

    not_a_date = client.post(
        url,
        data=_form(
            csrf,
            side.pregnancy,
            phone="07700 900456",
            **{"estimated_due_date-day": "31", "estimated_due_date-month": "2"},
        ),
    )
    assert not_a_date.status_code == 422
    assert _error_links(not_a_date.text) == ["estimated_due_date-day"]
    assert "Her estimated due date must be a real date" in not_a_date.text
    assert 'value="07700 900456"' in not_a_date.text

    too_far = local_today() + dt.timedelta(days=400)
    impossible = client.post(
        url, data=_form(csrf, side.pregnancy, **_date("estimated_due_date", too_far))
    )
    assert impossible.status_code == 422
    assert _error_links(impossible.text) == ["estimated_due_date-day"]
    assert "must be within the next 40 weeks" in impossible.text

    blank = client.post(
        url,
        data=_form(
            csrf,
            side.pregnancy,
            **{
                "estimated_due_date-day": "",
                "estimated_due_date-month": "",
                "estimated_due_date-year": "",
            },
        ),
    )
    assert blank.status_code == 422
    assert "Enter her estimated due date." in blank.text

    assert _stored(session, side.pregnancy) == before
    assert _updates(session, side.pregnancy) == []


def test_after_the_birth_her_phone_can_change_while_the_due_date_is_past(
    client: TestClient, session: Session, side: Side, csrf: str
) -> None:
    today = local_today()
    late = factories.make_pregnancy(
        session,
        unit=side.unit,
        nhs_number="9990000077",
        estimated_due_date=today - dt.timedelta(35),
    )
    late.born_on = today - dt.timedelta(days=30)  # in her postnatal weeks: still current
    session.flush()
    saved = client.post(
        f"/pregnancies/{late.id}/details",
        data=_form(csrf, late, phone="07700 900789"),
        follow_redirects=False,
    )
    assert saved.status_code == 303
    assert _stored(session, late)["phone"] == "07700 900789"


def test_an_ended_pregnancy_offers_no_form(
    client: TestClient, session: Session, side: Side, csrf: str
) -> None:
    ended = factories.make_pregnancy(
        session,
        unit=side.unit,
        nhs_number="9990000077",
        estimated_due_date=local_today() - dt.timedelta(days=60),
    )
    record = client.get(f"/pregnancies/{ended.id}")
    assert f'href="/pregnancies/{ended.id}/details"' not in record.text
    page = client.get(f"/pregnancies/{ended.id}/details")
    assert page.status_code == 200
    assert "This pregnancy has ended" in page.text and 'name="phone"' not in page.text
    before = _stored(session, ended)
    posted = client.post(f"/pregnancies/{ended.id}/details", data=_form(csrf, ended, phone=""))
    assert posted.status_code == 422
    assert "not her current one" in posted.text
    assert _stored(session, ended) == before


def test_another_units_pregnancy_is_not_found_and_other_roles_are_refused(
    client: TestClient, session: Session, side: Side, csrf: str
) -> None:
    other = build_side(session)
    url = f"/pregnancies/{other.pregnancy.id}/details"
    before = _stored(session, other.pregnancy)
    assert client.get(url).status_code == 404
    posted = client.post(url, data=_form(csrf, other.pregnancy, phone="07700 900456"))
    assert posted.status_code == 404
    assert "Page not found" in posted.text and "Testpatient" not in posted.text
    assert _stored(session, other.pregnancy) == before

    mine = f"/pregnancies/{side.pregnancy.id}/details"
    for role in ("lead", "advisor"):
        token = sign_in(client, session, side.users[role])
        shown = client.get(mine)
        assert shown.status_code == 403
        assert "This page is for midwives" in shown.text and "Testpatient" not in shown.text
        sent = client.post(mine, data=_form(token, side.pregnancy, phone="07700 900456"))
        assert sent.status_code == 403
    assert _stored(session, side.pregnancy)["phone"] == "07700 900123"
    denied = [event.role for event in denied_on_pregnancy(session, side.pregnancy.id)]
    assert sorted(denied) == ["advisor", "advisor", "lead", "lead"]


def test_the_form_needs_the_csrf_token(
    client: TestClient, session: Session, side: Side, csrf: str
) -> None:
    url = f"/pregnancies/{side.pregnancy.id}/details"
    assert client.get(url).status_code == 200
    for token in ("forged", ""):
        answer = client.post(url, data=_form(token, side.pregnancy, phone="07700 900456"))
        assert answer.status_code == 403
        assert "This form has expired" in answer.text
    assert _stored(session, side.pregnancy)["phone"] == "07700 900123"
    assert _updates(session, side.pregnancy) == []


def test_the_result_panel_says_when_the_service_has_no_number_to_phone_her(
    client: TestClient, session: Session, side: Side, csrf: str
) -> None:
    client.post(
        f"/pregnancies/{side.pregnancy.id}/test",
        data=_test_form(csrf, how="typed", co_ppm="12", smoking_status="smoker"),
    )
    reading = session.scalars(select(Reading)).one()
    assert reading.referral_id is not None
    link = f'href="/pregnancies/{side.pregnancy.id}/details"'

    with_phone = client.get(f"/readings/{reading.id}")
    assert with_phone.status_code == 200
    assert "cannot phone her" not in with_phone.text and link not in with_phone.text

    client.post(
        f"/pregnancies/{side.pregnancy.id}/details", data=_form(csrf, side.pregnancy, phone="")
    )
    assert _stored(session, side.pregnancy)["phone"] is None
    without = client.get(f"/readings/{reading.id}")
    assert "No phone number for her" in without.text
    assert "The stop-smoking service cannot phone her" in without.text
    assert link in without.text


def test_a_due_date_that_would_strand_her_recorded_test_is_refused_on_its_field(
    client: TestClient, session: Session, side: Side, csrf: str
) -> None:
    booked_on = local_today() - dt.timedelta(days=60)
    session.add(
        Contact(
            pregnancy_id=side.pregnancy.id, kind="booking", occurred_on=booked_on, gestation_days=0
        )
    )
    session.flush()
    before = _stored(session, side.pregnancy)
    stranding = local_today() + dt.timedelta(days=250)  # began 30 days ago: after her booking
    response = client.post(
        f"/pregnancies/{side.pregnancy.id}/details",
        data=_form(csrf, side.pregnancy, **_date("estimated_due_date", stranding)),
    )
    assert response.status_code == 422
    assert _error_links(response.text) == ["estimated_due_date-day"]
    assert f"booking test on {booked_on.day} {booked_on:%B %Y}" in response.text
    assert _stored(session, side.pregnancy) == before
