"""The midwife's pages as a browser without JavaScript uses them: forms posted, redirected."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit.models import AuditEvent
from app.clock import local_date
from app.db import utcnow
from app.identity.models import WebSession
from app.monitors.models import DeviceReading, Monitor
from app.pregnancies.models import Contact, Pregnancy
from app.readings.models import Reading
from referral.models import Referral
from tests import factories
from tests.app.access_world import Side, build_side, denied_on_pregnancy, sign_in

OTHER_NHS = "9990000077"


@pytest.fixture
def side(session: Session) -> Side:
    return build_side(session)


@pytest.fixture
def csrf(client: TestClient, session: Session, side: Side) -> str:
    return sign_in(client, session, side.users["midwife"])


def _readings(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Reading)) or 0


def _error_links(page: str) -> list[str]:
    summary = page.split('class="error-summary__list"', 1)[1].split("</ul>", 1)[0]
    return re.findall(r'href="#([^"]+)"', summary)


def _test_form(csrf: str, **fields: str) -> dict[str, str]:
    return {"csrf_token": csrf, "source_id": "web-" + "a" * 24, **fields}


def _pregnancy_due(session: Session, side: Side, gestation_days: int, nhs: str) -> Pregnancy:
    today = local_date(utcnow())
    return factories.make_pregnancy(
        session,
        unit=side.unit,
        nhs_number=nhs,
        estimated_due_date=today + dt.timedelta(days=280 - gestation_days),
    )


def test_the_worklist_shows_tests_due_missed_results_and_women_handed_back(
    client: TestClient, session: Session, side: Side, csrf: str
) -> None:
    booking = _pregnancy_due(session, side, 70, "9990000069")
    booking.given_name = "Bookingdue"
    thirty_six = _pregnancy_due(session, side, 250, OTHER_NHS)
    thirty_six.given_name = "Thirtysixdue"
    session.add(
        Contact(
            pregnancy=thirty_six,
            kind="booking",
            occurred_on=thirty_six.estimated_due_date - dt.timedelta(days=280 - 70),
            gestation_days=70,
        )
    )
    missed = _pregnancy_due(session, side, 275, "9990000085")
    missed.given_name = "Missedtest"
    session.add(
        Contact(
            pregnancy=missed,
            kind="booking",
            occurred_on=missed.estimated_due_date - dt.timedelta(days=280 - 70),
            gestation_days=70,
        )
    )
    side.referral.status = "uncontactable"
    side.referral.closed_at = utcnow()
    session.add(Monitor(serial="SIM-0001", unit_id=side.unit.id))
    session.add(
        DeviceReading(
            unit_id=side.unit.id,
            device_serial="SIM-0001",
            sequence=1,
            co_ppm=9,
            measured_at=utcnow() - dt.timedelta(hours=3),
        )
    )
    session.flush()

    page = client.get("/worklist")

    assert page.status_code == 200
    due = page.text.split('id="due"')[1].split('id="missed"')[0]
    assert "Bookingdue" in due and "Thirtysixdue" in due
    missed_part = page.text.split('id="missed"')[1].split('id="results"')[0]
    assert "Missedtest" in missed_part
    assert "9 ppm" in page.text and "Unrecorded" in page.text
    handed = page.text.split('id="handed-back"')[1]
    assert "Testpatient" in handed and "Uncontactable" in handed
    searched = session.scalars(
        select(AuditEvent.subject_pregnancy_id).where(AuditEvent.action == "search")
    ).all()
    assert {booking.id, thirty_six.id, missed.id, side.pregnancy.id} <= set(searched)


def test_finding_a_woman_checks_the_nhs_number_and_keeps_what_was_typed(
    client: TestClient, side: Side, csrf: str
) -> None:
    wrong = client.post("/pregnancies", data={"csrf_token": csrf, "nhs_number": "943 476 5918"})
    assert wrong.status_code == 422
    assert _error_links(wrong.text) == ["nhs_number"]
    assert 'value="943 476 5918"' in wrong.text
    assert 'aria-describedby="nhs_number-hint nhs_number-error"' in wrong.text

    found = client.post("/pregnancies", data={"csrf_token": csrf, "nhs_number": "943 476 5919"})
    assert found.status_code == 200
    assert f'href="/pregnancies/{side.pregnancy.id}"' in found.text

    none = client.post("/pregnancies", data={"csrf_token": csrf, "nhs_number": OTHER_NHS})
    assert "No pregnancy found" in none.text
    assert "Register her pregnancy" in none.text


def test_registering_a_pregnancy_shows_each_error_and_then_opens_her_record(
    client: TestClient, session: Session, side: Side, csrf: str
) -> None:
    start = client.post(
        "/pregnancies/new", data={"csrf_token": csrf, "step": "start", "nhs_number": OTHER_NHS}
    )
    assert start.status_code == 200
    assert f'value="{OTHER_NHS}"' in start.text
    assert "error-summary" not in start.text

    form = {
        "csrf_token": csrf,
        "nhs_number": OTHER_NHS,
        "estimated_due_date-day": "31",
        "estimated_due_date-month": "2",
        "estimated_due_date-year": "2027",
        "given_name": "Amy",
        "phone": "not a phone",
    }
    wrong = client.post("/pregnancies/new", data=form)
    assert wrong.status_code == 422
    assert _error_links(wrong.text) == ["estimated_due_date-day"]
    assert 'value="Amy"' in wrong.text and 'value="31"' in wrong.text

    due = local_date(utcnow()) + dt.timedelta(days=200)
    form.update(
        {
            "estimated_due_date-day": str(due.day),
            "estimated_due_date-month": str(due.month),
            "estimated_due_date-year": str(due.year),
        }
    )
    phone = client.post("/pregnancies/new", data=form)
    assert _error_links(phone.text) == ["phone"]

    form["phone"] = "07700 900456"
    done = client.post("/pregnancies/new", data=form, follow_redirects=False)
    assert done.status_code == 303
    pregnancy = session.scalars(select(Pregnancy).where(Pregnancy.nhs_number == OTHER_NHS)).one()
    assert done.headers["location"] == f"/pregnancies/{pregnancy.id}"
    record = client.get(done.headers["location"])
    assert "Amy" in record.text and "Record a CO test" in record.text

    again = client.post("/pregnancies/new", data=form)
    assert _error_links(again.text) == ["nhs_number"]
    assert "already has a pregnancy" in again.text


def test_a_typed_reading_of_7_ppm_refers_her_and_shows_the_script(
    client: TestClient, session: Session, side: Side, csrf: str
) -> None:
    pregnancy = _pregnancy_due(session, side, 80, OTHER_NHS)
    answer = client.post(
        f"/pregnancies/{pregnancy.id}/test",
        data=_test_form(csrf, how="typed", co_ppm="7", smoking_status="non_smoker"),
        follow_redirects=False,
    )
    assert answer.status_code == 303, answer.text
    reading = session.scalars(select(Reading)).one()
    assert answer.headers["location"] == f"/readings/{reading.id}"
    assert (reading.co_ppm, reading.recorded_by_user_id) == (7, side.users["midwife"].id)

    before = session.scalar(select(func.max(AuditEvent.id)))
    page = client.get(answer.headers["location"])
    assert "CO reading: 7 ppm" in page.text
    assert "Read this to her" in page.text
    assert "We refer everyone in this situation" in page.text
    assert "Record that she opted out" in page.text
    actions = session.scalars(
        select(AuditEvent.record_type).where(
            AuditEvent.id > before, AuditEvent.subject_pregnancy_id == pregnancy.id
        )
    ).all()
    assert sorted(actions) == ["pregnancy", "reading", "referral"]  # each read once

    replay = client.post(
        f"/pregnancies/{pregnancy.id}/test",
        data=_test_form(csrf, how="typed", co_ppm="7", smoking_status="non_smoker"),
        follow_redirects=False,
    )
    assert replay.headers["location"] == f"/readings/{reading.id}"
    assert _readings(session) == 1


def test_a_monitor_result_is_listed_for_the_chosen_monitor_and_attached(
    client: TestClient, session: Session, side: Side, csrf: str
) -> None:
    session.add(Monitor(serial="SIM-0001", unit_id=side.unit.id))
    result = DeviceReading(
        unit_id=side.unit.id,
        device_serial="SIM-0001",
        sequence=7,
        co_ppm=7,
        measured_at=utcnow() - dt.timedelta(minutes=1),
    )
    session.add(result)
    session.flush()

    form = client.get(f"/pregnancies/{side.pregnancy.id}/test", params={"device": "SIM-0001"})
    assert form.status_code == 200
    assert f'id="device_reading_id-{result.id}"' in form.text
    assert "exhale_monitor=SIM-0001" in form.headers["set-cookie"]
    assert "monitor.js" in form.text

    answer = client.post(
        f"/pregnancies/{side.pregnancy.id}/test",
        data=_test_form(
            csrf,
            how="monitor",
            device="SIM-0001",
            device_reading_id=str(result.id),
            smoking_status="smoker",
        ),
        follow_redirects=False,
    )
    assert answer.status_code == 303
    reading = session.scalars(select(Reading)).one()
    assert (reading.co_ppm, reading.device_serial) == (7, "SIM-0001")
    session.refresh(result)
    assert result.reading_id == reading.id
    remembered = client.get(f"/pregnancies/{side.pregnancy.id}/test")
    assert 'value="SIM-0001" selected' in remembered.text


def test_a_test_form_with_errors_names_each_one_keeps_the_values_and_records_nothing(
    client: TestClient, session: Session, side: Side, csrf: str
) -> None:
    answer = client.post(
        f"/pregnancies/{side.pregnancy.id}/test",
        data=_test_form(csrf, how="typed", co_ppm="seven", **{"stopped_smoking_on-day": "40"}),
    )
    assert answer.status_code == 422
    assert _error_links(answer.text) == ["co_ppm", "smoking_status", "stopped_smoking_on-day"]
    assert 'value="seven"' in answer.text and 'value="40"' in answer.text
    assert "Error: Record a CO test" in answer.text
    assert _readings(session) == 0

    no_result = client.post(
        f"/pregnancies/{side.pregnancy.id}/test",
        data=_test_form(csrf, how="monitor", device="SIM-0001", smoking_status="smoker"),
    )
    assert _error_links(no_result.text) == ["monitor-results"]
    no_monitor = client.post(
        f"/pregnancies/{side.pregnancy.id}/test",
        data=_test_form(csrf, how="monitor", smoking_status="smoker"),
    )
    assert _error_links(no_monitor.text) == ["how"]


def test_a_service_refusal_is_shown_on_the_field(
    client: TestClient, session: Session, side: Side, csrf: str
) -> None:
    answer = client.post(
        f"/pregnancies/{side.pregnancy.id}/test",
        data=_test_form(csrf, how="declined", smoking_status="smoker", contact="postnatal"),
    )
    assert answer.status_code == 422
    assert _error_links(answer.text) == ["contact"]
    assert "postnatal needs the birth recorded first" in answer.text
    assert "record the birth on her pregnancy page" in answer.text
    assert "/api/" not in answer.text
    assert _readings(session) == 0


def test_the_midwife_records_an_opt_out_from_the_result_panel(
    client: TestClient, session: Session, side: Side, csrf: str
) -> None:
    client.post(
        f"/pregnancies/{side.pregnancy.id}/test",
        data=_test_form(csrf, how="typed", co_ppm="12", smoking_status="smoker"),
    )
    reading = session.scalars(select(Reading)).one()
    referral = session.get(Referral, reading.referral_id)
    assert referral is not None
    session.refresh(referral)
    form = {
        "csrf_token": csrf,
        "kind": "opt_out",
        "version": str(referral.version),
        "return_to": f"/readings/{reading.id}#referral",
    }
    blank = client.post(f"/referrals/{referral.id}", data={**form, "reason": " "})
    assert blank.status_code == 422
    assert _error_links(blank.text) == ["opt_out-reason"]

    done = client.post(
        f"/referrals/{referral.id}", data={**form, "reason": "Not now"}, follow_redirects=False
    )
    assert done.status_code == 303
    assert done.headers["location"] == f"/readings/{reading.id}#referral"
    page = client.get(f"/readings/{reading.id}")
    assert "She opted out: “Not now”" in page.text

    refused = client.post(
        f"/referrals/{referral.id}", data={**form, "kind": "contact_attempt", "reached": "yes"}
    )
    assert refused.status_code == 403
    assert "records an opt-out here" in refused.text


def test_failures_are_pages_not_stack_traces(
    client: TestClient, session: Session, side: Side, csrf: str
) -> None:
    other = build_side(session)
    elsewhere = client.get(f"/pregnancies/{other.pregnancy.id}")
    assert elsewhere.status_code == 404
    assert "Page not found" in elsewhere.text and "<html" in elsewhere.text
    assert "Testpatient" not in elsewhere.text
    (denied,) = denied_on_pregnancy(session, other.pregnancy.id)
    assert denied.detail == {"reason": "not_found"}

    forged = client.post(
        f"/pregnancies/{side.pregnancy.id}/test",
        data={"csrf_token": "forged", "how": "declined", "smoking_status": "smoker"},
    )
    assert forged.status_code == 403
    assert "This form has expired" in forged.text
    assert _readings(session) == 0

    assert client.get("/pregnancies/not-a-number").status_code == 404

    sign_in(client, session, side.users["advisor"])
    wrong_role = client.get("/worklist")
    assert wrong_role.status_code == 403
    assert "This page is for midwives" in wrong_role.text
    her_record = client.get(f"/pregnancies/{side.pregnancy.id}")
    assert her_record.status_code == 403
    assert "Testpatient" not in her_record.text
    (refused,) = denied_on_pregnancy(session, side.pregnancy.id)
    assert (refused.role, refused.detail) == ("advisor", {"reason": "role"})


def test_an_expired_session_returns_to_the_login_page_and_back(
    client: TestClient, session: Session, side: Side, csrf: str
) -> None:
    for row in session.scalars(select(WebSession)):
        row.last_seen_at = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    session.flush()
    page = client.post(
        f"/pregnancies/{side.pregnancy.id}/test",
        data=_test_form(csrf, how="declined", smoking_status="smoker"),
    )
    assert page.status_code == 401
    assert 'action="/login"' in page.text
    assert f'name="next" value="/pregnancies/{side.pregnancy.id}/test"' in page.text
    assert _readings(session) == 0


def test_an_unexpected_failure_is_a_page_with_a_reference(
    client: TestClient, side: Side, csrf: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr("app.web.worklist.tests_due", broken)
    page = client.get("/worklist")
    assert page.status_code == 500
    assert "nothing was saved" in page.text
    assert page.headers["x-request-id"] in page.text
    assert "Traceback" not in page.text and "went away" not in page.text
