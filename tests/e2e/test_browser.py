"""The whole path in a real browser: a monitor's 7 ppm reading reaches the midwife's page through
the bridge, she records it and reads the referral script; the advisor finds the referral first
in her queue and records a contact and a quit date; the lead opens the measures.

Every page is scanned with axe-core (no serious or critical violation allowed) and photographed
into test-artifacts/screenshots/; the API documentation page, which is Swagger UI's, is only
checked to render with nothing fetched from outside.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from app import migrate
from app.clock import local_date
from app.config import Settings
from app.db import make_engine, make_sessionmaker, session_scope, utcnow
from devices.bridge import Backoff, Bridge
from devices.simulator import SimulatedMonitor, Step, Values
from tests import factories
from tests.devices.conftest import manual_scenario
from tests.devices.helpers import wait_for
from tests.e2e.browser import Pages, browser_pages
from tests.server import running_server

NEW_NHS_NUMBER = "999 000 0069"
SERIAL = "SIM-0001"


@dataclass(frozen=True)
class World:
    midwife: str
    advisor: str
    lead: str
    bridge_key: str


def _seed(database_url: str) -> World:
    migrate.upgrade(database_url)
    engine = make_engine(database_url)
    try:
        with session_scope(make_sessionmaker(engine)) as session:
            service = factories.make_service(session)
            unit = factories.make_unit(session, service=service)
            users = {
                role: factories.make_user(
                    session, role=role, organisation=service if role == "advisor" else unit
                ).username
                for role in ("midwife", "advisor", "lead")
            }
            _client, key = factories.make_api_client(session, role="bridge", organisation=unit)
            for days, name, nhs in ((8, "Olivia", "9990000077"), (10, "Priya", "9990000085")):
                pregnancy = factories.make_pregnancy(session, unit=unit, nhs_number=nhs)
                pregnancy.given_name = name
                referral = factories.make_referral(session, pregnancy=pregnancy, service=service)
                referral.first_contact_due_at = utcnow() + dt.timedelta(days=days)
    finally:
        engine.dispose()
    return World(users["midwife"], users["advisor"], users["lead"], key)


@pytest.fixture
def monitor(tmp_path: Path) -> Iterator[SimulatedMonitor]:
    scenario = manual_scenario(serial=SERIAL, values=Values("fixed", ppm=7))
    simulated = SimulatedMonitor(scenario, fast=True, link=tmp_path / "monitor").start()
    yield simulated
    simulated.stop()


def _log_in(page: Page, username: str) -> None:
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(factories.DEFAULT_PASSWORD)
    page.get_by_role("button", name="Log in").click()


def _nav(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Main").get_by_role("link", name=name).click()


def _date(page: Page, group: str, day: dt.date) -> None:
    fields = page.get_by_role("group", name=group)
    fields.get_by_label("Day").fill(str(day.day))
    fields.get_by_label("Month").fill(str(day.month))
    fields.get_by_label("Year").fill(str(day.year))


def test_midwife_advisor_and_lead_in_a_real_browser(
    tmp_path: Path, fresh_database_url: str, monitor: SimulatedMonitor
) -> None:
    world = _seed(fresh_database_url)
    settings = Settings(database_url=fresh_database_url, log_json=True)
    with running_server(settings) as base_url, browser_pages(base_url) as pages:
        bridge = Bridge(
            str(tmp_path / "monitor"),
            base_url,
            world.bridge_key,
            tmp_path / "bridge-queue.db",
            send_backoff=Backoff(0.1, 1.0),
            poll_s=0.05,
        )
        with bridge:
            monitor.inject(Step("test", ppm=2))  # the woman before: a result nobody recorded
            wait_for(
                lambda: bridge.status.last_sent is not None, timeout_s=30, what="the first result"
            )
            _midwife(pages, world, monitor)
        _advisor(pages, world)
        _lead(pages, world)
        _refused(pages, world)
        _api_docs(pages)
    assert pages.audit.blocking() == [], "\n".join(pages.audit.blocking())
    assert pages.audit.outside_requests == []
    assert pages.audit.script_errors == []


def _midwife(pages: Pages, world: World, monitor: SimulatedMonitor) -> None:
    page = pages.person()
    page.goto("/worklist")
    expect(page.get_by_role("heading", name="Log in to exhale")).to_be_visible()
    pages.check(page, "login", narrow=True)
    _log_in(page, world.midwife)
    expect(page.get_by_role("heading", name="Worklist")).to_be_visible()  # back where she was
    expect(page.get_by_text("2 ppm")).to_be_visible()
    pages.check(page, "worklist", narrow=True)
    page.goto("/")
    pages.check(page, "home-midwife")

    _nav(page, "Find a woman")
    page.get_by_label("NHS number").fill("999 000 0068")
    page.get_by_role("button", name="Find").click()
    expect(page.locator(".error-summary")).to_be_focused()
    pages.check(page, "find-error", narrow=True)
    page.get_by_label("NHS number").fill(NEW_NHS_NUMBER)
    page.get_by_role("button", name="Find").click()
    expect(page.get_by_role("heading", name="No pregnancy found")).to_be_visible()
    pages.check(page, "find-not-found")

    page.get_by_role("button", name="Register her pregnancy").click()
    expect(page.get_by_label("NHS number")).to_have_value(NEW_NHS_NUMBER.replace(" ", ""))
    _date(page, "Estimated due date", local_date(utcnow()) + dt.timedelta(days=196))
    page.get_by_label("First name (optional)").fill("Amara")
    page.get_by_label("Last name (optional)").fill("Okafor")
    page.get_by_label("Phone number (optional)").fill("0770090012x")
    page.get_by_role("button", name="Register the pregnancy").click()
    expect(page.get_by_role("link", name=re.compile("Phone number"))).to_be_visible()
    expect(page.get_by_label("First name (optional)")).to_have_value("Amara")
    pages.check(page, "register-error", narrow=True)
    page.get_by_label("Phone number (optional)").fill("07700 900124")
    page.get_by_label("Postcode (optional)").fill("ls1 4ap")
    page.get_by_role("button", name="Register the pregnancy").click()
    expect(page.get_by_role("heading", name="Amara Okafor")).to_be_visible()
    pages.check(page, "pregnancy", narrow=True)

    page.get_by_role("button", name="Record the birth").click()  # at 12 weeks: refused
    _date(page, "Date of the birth", local_date(utcnow()))
    page.get_by_role("radio", name="She does not smoke").check()
    page.get_by_role("button", name="Save the birth").click()
    expect(page.get_by_role("link", name=re.compile("before 22 weeks"))).to_be_visible()
    pages.check(page, "birth-error", narrow=True)
    page.get_by_role("link", name="Back to her record").click()

    page.get_by_role("link", name="Change her details").click()
    expect(page.get_by_label("Phone number (optional)")).to_have_value("07700 900124")
    pages.check(page, "details", narrow=True)
    page.get_by_role("link", name="Back to her record").click()

    page.get_by_role("button", name="Record a CO test").click()
    page.get_by_label("Monitor", exact=True).select_option(SERIAL)
    page.get_by_role("button", name="Use this monitor").click()
    status = page.locator("#monitor-status")
    expect(status).to_contain_text("Choose her result")
    pages.check(page, "record-test-waiting", narrow=True)
    monitor.inject(Step("test"))  # she blows into the monitor: 7 ppm
    expect(status).to_contain_text("Reading received: 7 ppm", timeout=20_000)
    expect(page.get_by_role("radio", name=re.compile("^7 ppm"))).to_be_checked()
    expect(page.get_by_role("radio", name="Result from the monitor")).to_be_checked()
    page.get_by_role("radio", name="She does not smoke").check()
    pages.check(page, "record-test-reading-received")
    page.get_by_role("button", name="Save the test").click()

    expect(page.get_by_role("heading", name="CO reading: 7 ppm")).to_be_visible()
    expect(page.get_by_role("heading", name="Read this to her")).to_be_visible()
    expect(page.get_by_text("We refer everyone in this situation")).to_be_visible()
    expect(page.get_by_role("button", name="Record that she opted out")).to_be_visible()
    pages.check(page, "result", narrow=True)
    page.context.close()


def _advisor(pages: Pages, world: World) -> None:
    page = pages.person()
    page.goto("/")
    _log_in(page, world.advisor)
    _nav(page, "Referral queue")
    first = page.locator("table a[href^='/referrals/']").first
    expect(first).to_contain_text("Amara Okafor")
    pages.check(page, "queue", narrow=True)
    first.click()
    expect(page.get_by_role("heading", name="Amara Okafor")).to_be_visible()
    expect(page.get_by_role("link", name="07700 900124")).to_be_visible()
    pages.check(page, "referral", narrow=True)

    contact = page.locator("#contact_attempt")
    contact.get_by_role("radio", name="Yes").check()
    contact.get_by_label("Note (optional)").fill("Spoke to her; happy to be seen at home.")
    contact.get_by_role("button", name="Save the contact attempt").click()
    expect(page.get_by_text("Spoke to her", exact=True)).to_be_visible()
    page.locator("#assessment").get_by_role("button", name="Save the assessment").click()
    quit_form = page.locator("#quit_date_set")
    expect(quit_form).to_have_attribute("open", "")
    quit_form.get_by_role("button", name="Save the quit date").click()
    expect(page.get_by_role("link", name="Enter the quit date.")).to_be_visible()
    pages.check(page, "referral-error")
    _date(page, "Quit date", local_date(utcnow()) + dt.timedelta(days=7))
    page.locator("#quit_date_set").get_by_role("button", name="Save the quit date").click()
    expect(page.locator("p .tag")).to_have_text("Quit date set")
    expect(page.locator("#timeline")).to_be_visible()
    pages.check(page, "referral-quit-date-set", narrow=True)
    page.context.close()


def _lead(pages: Pages, world: World) -> None:
    page = pages.person()
    page.goto("/")
    _log_in(page, world.lead)
    _nav(page, "Measures")
    expect(page.get_by_role("heading", name="Measures", exact=True)).to_be_visible()
    pages.check(page, "measures", narrow=True)
    page.context.close()


def _refused(pages: Pages, world: World) -> None:
    page = pages.person()
    page.goto("/queue")
    _log_in(page, world.lead)
    expect(page.get_by_role("heading", name="You cannot use this page")).to_be_visible()
    pages.check(page, "forbidden")
    page.context.close()


def _api_docs(pages: Pages) -> None:
    """The API's documentation renders with nothing fetched from outside (no CDN)."""
    page = pages.person()
    page.goto("/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("exhale")
    expect(page.get_by_text("/api/v1/readings", exact=True).first).to_be_visible()
    page.context.close()
