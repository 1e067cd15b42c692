"""Recording the birth (with her smoking status at delivery) and her smoking status after the
birth, on the midwife's pages, as a browser without JavaScript uses them."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit.models import AuditEvent
from app.clock import local_today
from app.pregnancies.models import Contact, PostnatalStatus, Pregnancy
from app.readings.models import Reading
from tests import factories
from tests.app.access_world import Side, build_side, denied_on_pregnancy, sign_in
from tests.app.test_pages_midwife import _error_links, _test_form


@pytest.fixture
def side(session: Session) -> Side:
    return build_side(session)  # her pregnancy is at 180 days (25+5 weeks) today


@pytest.fixture
def csrf(client: TestClient, session: Session, side: Side) -> str:
    return sign_in(client, session, side.users["midwife"])


def _date(name: str, day: dt.date) -> dict[str, str]:
    return {
        f"{name}-day": str(day.day),
        f"{name}-month": str(day.month),
        f"{name}-year": str(day.year),
    }


def _birth(csrf: str, born_on: dt.date, status: str = "smoker") -> dict[str, str]:
    return {"csrf_token": csrf, **_date("born_on", born_on), "smoking_status": status}


def _postnatal(csrf: str, recorded_on: dt.date, status: str = "smoker") -> dict[str, str]:
    return {"csrf_token": csrf, **_date("recorded_on", recorded_on), "smoking_status": status}


def _stored(session: Session, pregnancy: Pregnancy) -> tuple[dt.date | None, str | None]:
    session.expire_all()
    fresh = session.get(Pregnancy, pregnancy.id)
    assert fresh is not None
    return fresh.born_on, fresh.smoking_status_at_delivery


def _statuses(session: Session) -> list[tuple[dt.date, str]]:
    rows = session.scalars(select(PostnatalStatus).order_by(PostnatalStatus.recorded_on))
    return [(row.recorded_on, row.smoking_status) for row in rows]


def _audited(session: Session, pregnancy: Pregnancy, action: str) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(
                AuditEvent.action == action,
                AuditEvent.outcome == "allowed",
                AuditEvent.subject_pregnancy_id == pregnancy.id,
            )
        )
        or 0
    )


def test_the_midwife_records_the_birth_and_then_corrects_it(
    client: TestClient, session: Session, side: Side, csrf: str
) -> None:
    pregnancy_id = side.pregnancy.id
    record = client.get(f"/pregnancies/{pregnancy_id}")
    assert f'href="/pregnancies/{pregnancy_id}/birth"' in record.text
    assert "Record the birth" in record.text
    assert "Record smoking status after the birth" not in record.text

    reads_before = _audited(session, side.pregnancy, "read")
    form = client.get(f"/pregnancies/{pregnancy_id}/birth")
    assert form.status_code == 200
    assert "<h1>Record the birth</h1>" in form.text
    assert "She smokes" in form.text and "She did not say" in form.text
    assert "She has stopped smoking" not in form.text  # not a status at delivery
    assert _audited(session, side.pregnancy, "read") == reads_before + 1

    born_on = local_today() - dt.timedelta(days=3)
    saved = client.post(
        f"/pregnancies/{pregnancy_id}/birth", data=_birth(csrf, born_on), follow_redirects=False
    )
    assert saved.status_code == 303
    assert saved.headers["location"] == f"/pregnancies/{pregnancy_id}"
    assert _stored(session, side.pregnancy) == (born_on, "smoker")
    assert _audited(session, side.pregnancy, "update") >= 1

    record = client.get(f"/pregnancies/{pregnancy_id}")
    assert f"{born_on:%-d %B %Y}, smoker at delivery" in record.text
    assert "Correct the birth" in record.text
    assert f'href="/pregnancies/{pregnancy_id}/postnatal-status"' in record.text

    correcting = client.get(f"/pregnancies/{pregnancy_id}/birth")
    assert "<h1>Correct the birth</h1>" in correcting.text
    assert f'name="born_on-day" type="text" inputmode="numeric" value="{born_on.day}"' in (
        correcting.text
    )
    corrected_on = born_on - dt.timedelta(days=1)
    again = client.post(
        f"/pregnancies/{pregnancy_id}/birth", data=_birth(csrf, corrected_on, "non_smoker")
    )
    assert again.status_code == 200  # followed to her record
    assert f"{corrected_on:%-d %B %Y}, non-smoker at delivery" in again.text
    assert _stored(session, side.pregnancy) == (corrected_on, "non_smoker")


def test_a_wrong_birth_date_is_shown_on_the_date_field_and_nothing_is_stored(
    client: TestClient, session: Session, side: Side, csrf: str
) -> None:
    url = f"/pregnancies/{side.pregnancy.id}/birth"
    tomorrow = local_today() + dt.timedelta(days=1)
    future = client.post(url, data=_birth(csrf, tomorrow))
    assert future.status_code == 422
    assert _error_links(future.text) == ["born_on-day"]
    assert "The date of the birth cannot be in the future." in future.text
    assert f'value="{tomorrow.year}"' in future.text  # what she typed is kept
    assert 'value="smoker" checked' in future.text

    at_20_weeks = local_today() - dt.timedelta(days=40)
    early = client.post(url, data=_birth(csrf, at_20_weeks))
    assert early.status_code == 422
    assert _error_links(early.text) == ["born_on-day"]
    assert "is before 22 weeks" in early.text

    blank = client.post(url, data={"csrf_token": csrf, "born_on-day": "31", "born_on-month": "2"})
    assert _error_links(blank.text) == ["born_on-day", "smoking_status"]
    assert "must be a real date" in blank.text
    assert _stored(session, side.pregnancy) == (None, None)


def test_an_antenatal_test_after_the_date_is_a_conflict_on_the_date_field(
    client: TestClient, session: Session, side: Side, csrf: str
) -> None:
    tested = client.post(
        f"/pregnancies/{side.pregnancy.id}/test",
        data=_test_form(csrf, how="declined", smoking_status="smoker"),
    )
    assert tested.status_code == 200
    answer = client.post(
        f"/pregnancies/{side.pregnancy.id}/birth",
        data=_birth(csrf, local_today() - dt.timedelta(days=2)),
    )
    assert answer.status_code == 409
    assert _error_links(answer.text) == ["born_on-day"]
    assert "before a recorded antenatal contact" in answer.text
    assert _stored(session, side.pregnancy) == (None, None)


def test_her_status_after_the_birth_can_be_recorded_once_the_birth_is(
    client: TestClient, session: Session, side: Side, csrf: str
) -> None:
    url = f"/pregnancies/{side.pregnancy.id}/postnatal-status"
    waiting = client.get(url)
    assert waiting.status_code == 200
    assert "Record the birth first" in waiting.text
    assert 'name="smoking_status"' not in waiting.text
    refused = client.post(url, data=_postnatal(csrf, local_today()))
    assert refused.status_code == 409
    assert _error_links(refused.text) == ["recorded_on-day"]
    assert "record the birth on her pregnancy page" in refused.text
    assert "/api/" not in refused.text
    assert _statuses(session) == []

    born_on = local_today() - dt.timedelta(days=10)
    client.post(f"/pregnancies/{side.pregnancy.id}/birth", data=_birth(csrf, born_on))
    form = client.get(url)
    today = local_today()
    assert f'name="recorded_on-day" type="text" inputmode="numeric" value="{today.day}"' in (
        form.text
    )
    before = client.post(url, data=_postnatal(csrf, born_on - dt.timedelta(days=1)))
    assert before.status_code == 422
    assert "The date must be between the birth and today." in before.text
    assert _statuses(session) == []

    saved = client.post(url, data=_postnatal(csrf, today, "ex_smoker"), follow_redirects=False)
    assert saved.status_code == 303
    assert saved.headers["location"] == f"/pregnancies/{side.pregnancy.id}"
    assert _statuses(session) == [(today, "ex_smoker")]
    record = client.get(f"/pregnancies/{side.pregnancy.id}")
    after_birth = record.text.split('id="after-birth"', 1)[1]
    assert f"{today:%-d %B %Y}" in after_birth and "Ex-smoker" in after_birth


def test_another_units_pregnancy_is_not_found_and_other_roles_are_refused(
    client: TestClient, session: Session, side: Side, csrf: str
) -> None:
    other = build_side(session)
    for page in ("birth", "postnatal-status"):
        assert client.get(f"/pregnancies/{other.pregnancy.id}/{page}").status_code == 404
    posted = client.post(
        f"/pregnancies/{other.pregnancy.id}/birth",
        data=_birth(csrf, local_today() - dt.timedelta(days=1)),
    )
    assert posted.status_code == 404
    assert "Page not found" in posted.text and "Testpatient" not in posted.text
    assert _stored(session, other.pregnancy) == (None, None)

    for role in ("lead", "advisor"):
        token = sign_in(client, session, side.users[role])
        shown = client.get(f"/pregnancies/{side.pregnancy.id}/birth")
        assert shown.status_code == 403
        assert "This page is for midwives" in shown.text and "Testpatient" not in shown.text
        sent = client.post(
            f"/pregnancies/{side.pregnancy.id}/birth",
            data=_birth(token, local_today() - dt.timedelta(days=1)),
        )
        assert sent.status_code == 403
    assert _stored(session, side.pregnancy) == (None, None)
    denied = [event.role for event in denied_on_pregnancy(session, side.pregnancy.id)]
    assert sorted(denied) == ["advisor", "advisor", "lead", "lead"]


def test_the_forms_need_the_csrf_token(
    client: TestClient, session: Session, side: Side, csrf: str
) -> None:
    yesterday = local_today() - dt.timedelta(days=1)
    for token in ("forged", ""):
        birth = client.post(
            f"/pregnancies/{side.pregnancy.id}/birth", data=_birth(token, yesterday)
        )
        assert birth.status_code == 403
        assert "This form has expired" in birth.text
    assert _stored(session, side.pregnancy) == (None, None)

    client.post(f"/pregnancies/{side.pregnancy.id}/birth", data=_birth(csrf, yesterday))
    status = client.post(
        f"/pregnancies/{side.pregnancy.id}/postnatal-status", data=_postnatal("forged", yesterday)
    )
    assert status.status_code == 403
    assert _statuses(session) == []


def test_an_ended_pregnancy_offers_no_form(
    client: TestClient, session: Session, side: Side, csrf: str
) -> None:
    ended = factories.make_pregnancy(
        session,
        unit=side.unit,
        nhs_number="9990000077",
        estimated_due_date=local_today() - dt.timedelta(days=60),
    )
    page = client.get(f"/pregnancies/{ended.id}/birth")
    assert page.status_code == 200
    assert "This pregnancy has ended" in page.text and 'name="smoking_status"' not in page.text
    posted = client.post(
        f"/pregnancies/{ended.id}/birth", data=_birth(csrf, local_today() - dt.timedelta(days=65))
    )
    assert posted.status_code == 422
    assert "not her current one" in posted.text
    assert _stored(session, ended) == (None, None)


def test_after_the_birth_is_recorded_on_its_page_a_postnatal_co_test_is_accepted(
    client: TestClient, session: Session, side: Side, csrf: str
) -> None:
    test_url = f"/pregnancies/{side.pregnancy.id}/test"
    postnatal = _test_form(csrf, how="declined", smoking_status="smoker", contact="postnatal")
    refused = client.post(test_url, data=postnatal)
    assert refused.status_code == 422
    assert _error_links(refused.text) == ["contact"]
    assert "record the birth on her pregnancy page" in refused.text
    assert "/api/" not in refused.text

    client.post(
        f"/pregnancies/{side.pregnancy.id}/birth",
        data=_birth(csrf, local_today() - dt.timedelta(days=2)),
    )
    accepted = client.post(test_url, data=postnatal, follow_redirects=False)
    assert accepted.status_code == 303
    assert accepted.headers["location"].startswith("/readings/")
    reading = session.scalars(select(Reading)).one()
    contact = session.get(Contact, reading.contact_id)
    assert contact is not None and contact.kind == "postnatal"
