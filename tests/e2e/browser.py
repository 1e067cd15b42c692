"""Debian's chromium driven by Playwright, with an axe-core scan and a screenshot of every page.

The browser is the system's ``/usr/bin/chromium`` (``.ci/run`` installs it): Playwright's own
browser download is never used. axe-core comes from the ``axe-playwright-python`` wheel, which
ships ``axe.min.js``; it is injected into each page, so nothing is fetched from outside.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from axe_playwright_python.base import AXE_SCRIPT
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.helpers import REPO

CHROMIUM = Path(os.environ.get("EXHALE_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = REPO / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
AXE_OPTIONS = {
    "runOnly": {
        "type": "tag",
        "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"],
    },
    "resultTypes": ["violations"],
}
BLOCKING = ("serious", "critical")
DESKTOP = {"width": 1280, "height": 900}
NARROW = {"width": 320, "height": 800}


def chromium_or_skip() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    found = shutil.which("chromium")
    if found:
        return Path(found)
    if os.environ.get("CI"):
        pytest.fail(f"{CHROMIUM} is missing: .ci/run installs Debian's chromium")
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)")


@dataclass
class Audit:
    """What the scans found, page by page; written to test-artifacts/axe-violations.json."""

    pages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rules_passed: dict[str, int] = field(default_factory=dict)
    outside_requests: list[str] = field(default_factory=list)
    script_errors: list[str] = field(default_factory=list)

    def blocking(self) -> list[str]:
        return [
            f"{name}: {v['id']} ({v['impact']}) {v['help']} at "
            + ", ".join(str(node["target"]) for node in v["nodes"][:3])
            for name, violations in self.pages.items()
            for v in violations
            if v["impact"] in BLOCKING
        ]

    def write(self) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        summary = {
            name: {
                "rules_passed": self.rules_passed.get(name, 0),
                "violations": [
                    {
                        "id": v["id"],
                        "impact": v["impact"],
                        "help": v["help"],
                        "nodes": len(v["nodes"]),
                    }
                    for v in violations
                ],
            }
            for name, violations in self.pages.items()
        }
        (ARTIFACTS / "axe-violations.json").write_text(json.dumps(summary, indent=2) + "\n")


class Pages:
    """One browser for the run; each person gets a context (her own cookies) of their own."""

    def __init__(self, browser: Browser, base_url: str, audit: Audit) -> None:
        self.browser = browser
        self.base_url = base_url
        self.audit = audit
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def person(self) -> Page:
        context: BrowserContext = self.browser.new_context(
            base_url=self.base_url, viewport=DESKTOP, locale="en-GB", timezone_id="Europe/London"
        )
        context.set_default_timeout(15_000)
        page = context.new_page()
        page.on("request", self._check_request)
        page.on("pageerror", lambda error: self.audit.script_errors.append(str(error)))
        return page

    def _check_request(self, request: Any) -> None:
        if not request.url.startswith((self.base_url, "data:")):
            self.audit.outside_requests.append(request.url)

    def check(self, page: Page, name: str, *, narrow: bool = False) -> None:
        """Scan the page with axe-core and save its screenshot (and a 320 px one if asked)."""
        page.wait_for_load_state("load")
        if not page.evaluate("typeof window.axe !== 'undefined'"):
            page.evaluate(AXE_SCRIPT)
        results = page.evaluate("options => window.axe.run(document, options)", AXE_OPTIONS)
        self.audit.pages[name] = results["violations"]
        self.audit.rules_passed[name] = len(results["passes"])
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        if narrow:
            self.narrow(page, name)

    def narrow(self, page: Page, name: str) -> None:
        """At 320 px nothing scrolls sideways (WCAG 1.4.10, reflow)."""
        page.set_viewport_size(NARROW)
        try:
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{name} scrolls sideways by {overflow} px at 320 px wide"
            page.screenshot(path=str(SCREENSHOTS / f"{name}-320px.png"), full_page=True)
        finally:
            page.set_viewport_size(DESKTOP)


@contextmanager
def browser_pages(base_url: str) -> Iterator[Pages]:
    executable = chromium_or_skip()
    audit = Audit()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), args=LAUNCH_ARGS)
        try:
            yield Pages(browser, base_url, audit)
        finally:
            browser.close()
            audit.write()
