"""Small things a person using the pages notices: names, error pages, wording, the page icon."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.clock import local_today
from app.db import utcnow
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
