"""Small things a person using the pages notices: names, error pages, wording, the page icon."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.clock import local_today
from app.db import utcnow
from app.readings.models import Reading
from tests import factories
from tests.app.access_world import Side, build_side, sign_in

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


@pytest.fixture
def side(session: Session) -> Side:
    return build_side(session)


def _section(page: str, heading_id: str, next_id: str | None) -> str:
    part = page.split(f'id="{heading_id}"', 1)[1]
    return part.split(f'id="{next_id}"', 1)[0] if next_id else part


def test_a_woman_with_no_name_recorded_has_a_link_you_can_see_on_the_worklist(
    client: TestClient, session: Session, side: Side
) -> None:
    booking = factories.make_pregnancy(
        session,
        unit=side.unit,
        nhs_number="9990000069",
        estimated_due_date=local_today() + dt.timedelta(days=280 - 70),
    )
    for pregnancy in (booking, side.pregnancy):
        pregnancy.given_name = pregnancy.family_name = None
    side.referral.status = "uncontactable"
    side.referral.closed_at = utcnow()
    session.flush()
    sign_in(client, session, side.users["midwife"])

    page = client.get("/worklist")

    assert page.status_code == 200
    sections = [("due", "missed"), ("missed", "results"), ("handed-back", None)]
    for heading_id, next_id in sections:
        section = _section(page.text, heading_id, next_id)
        links = re.findall(r'<a href="/pregnancies/\d+">([^<]*)</a>', section)
        assert links, heading_id
        assert [link.strip() for link in links] == ["Name not recorded"] * len(links), heading_id


@pytest.mark.parametrize("path", ["/admin", "/users", "/readings/1/zzz"])
def test_an_address_that_does_not_exist_is_a_page_in_a_browser(
    client: TestClient, path: str
) -> None:
    page = client.get(path, headers=BROWSER)
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>Page not found</h1>" in page.text
    assert '"error"' not in page.text


def test_an_address_only_a_form_posts_to_is_a_page_in_a_browser(client: TestClient) -> None:
    page = client.get("/logout", headers=BROWSER)
    assert page.status_code == 405
    assert page.headers["allow"] == "POST"
    assert "<h1>Page not found</h1>" in page.text


@pytest.mark.parametrize(
    ("method", "path", "answer"),
    [
        ("GET", "/api/v1/no-such-thing", "not_found"),
        ("GET", "/fhir/NoSuchResource", "OperationOutcome"),
        ("GET", "/oauth2/token", "method_not_allowed"),
        ("POST", "/healthz", "method_not_allowed"),
        ("GET", "/metrics/zzz", "not_found"),
    ],
)
def test_the_api_keeps_its_error_body_even_for_a_browser(
    client: TestClient, method: str, path: str, answer: str
) -> None:
    response = client.request(method, path, headers=BROWSER)
    assert response.status_code in {404, 405}
    body = response.json()
    assert body.get("error", body.get("resourceType")) == answer


def test_a_program_that_does_not_ask_for_html_keeps_the_error_body(client: TestClient) -> None:
    response = client.get("/admin", headers={"Accept": "application/json"})
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "Not Found", "fields": []}


@pytest.mark.parametrize(
    ("role", "wording"),
    [("admin", "as an admin"), ("advisor", "as an advisor"), ("lead", "as a lead")],
)
def test_the_wrong_role_page_says_who_you_are_signed_in_as(
    client: TestClient, session: Session, side: Side, role: str, wording: str
) -> None:
    sign_in(client, session, side.users[role])
    page = client.get("/worklist")
    assert page.status_code == 403
    assert f"You are signed in {wording}:" in page.text


def test_pages_name_their_icon_so_browsers_do_not_ask_for_one(client: TestClient) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    assert '<link rel="icon" href="data:,">' in page.text


def _error_summary(page: str) -> list[tuple[str, str]]:
    summary = page.split('class="error-summary__list"', 1)[1].split("</ul>", 1)[0]
    return re.findall(r'<a href="#([^"]+)">([^<]*)</a>', summary)


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("declined", "A declined test has no reading: clear the number, or choose to type it."),
        (
            "no_monitor",
            "With no working monitor there is no reading: clear the number, or choose to type it.",
        ),
    ],
)
def test_a_number_typed_for_a_test_with_no_reading_is_asked_about_not_dropped(
    client: TestClient, session: Session, side: Side, how: str, message: str
) -> None:
    csrf = sign_in(client, session, side.users["midwife"])
    form = {
        "csrf_token": csrf,
        "source_id": "web-" + "b" * 24,
        "how": how,
        "co_ppm": "7",
        "smoking_status": "smoker",
    }

    answer = client.post(f"/pregnancies/{side.pregnancy.id}/test", data=form)

    assert answer.status_code == 422
    assert _error_summary(answer.text) == [("co_ppm", message)]
    assert 'value="7"' in answer.text
    assert session.scalar(select(func.count()).select_from(Reading)) == 0


@pytest.mark.parametrize("phone", ["abc", "0770090012x", "0" * 33])
def test_a_phone_number_that_is_not_one_says_what_a_phone_number_is(
    client: TestClient, session: Session, side: Side, phone: str
) -> None:
    csrf = sign_in(client, session, side.users["midwife"])
    due = local_today() + dt.timedelta(days=200)
    form = {
        "csrf_token": csrf,
        "nhs_number": "9990000077",
        "estimated_due_date-day": str(due.day),
        "estimated_due_date-month": str(due.month),
        "estimated_due_date-year": str(due.year),
        "phone": phone,
    }

    answer = client.post("/pregnancies/new", data=form)

    assert answer.status_code == 422
    assert _error_summary(answer.text) == [
        (
            "phone",
            "Phone number: use 5 to 32 digits, spaces and + ( ) - only, for example 07700 900123.",
        )
    ]
