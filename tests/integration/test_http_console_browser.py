"""The console in a real browser: a case walked round its loop through the pages by a
reporter, a dispatcher and a unit, with screenshots of the inbox and the case page.

Chromium comes from the distribution's packages (``.ci/run`` installs it) and is
driven by Playwright; without it the test skips, except in CI, where it fails.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from closedloop import (
    Actor,
    CategoryCatalog,
    Engine,
    InMemoryDirectory,
    ResponsibilityList,
    workflows,
)
from closedloop.adapters.memory import InMemoryStore
from closedloop.testing import ManualClock
from tests.http_server import serving

pytest.importorskip("fastapi")
pytest.importorskip("jinja2")

from closedloop.adapters.http import ConsoleActor, ConsoleConfig, create_app

ROOT = Path(__file__).resolve().parents[2]
ARTEFACTS = ROOT / "test-artefacts"
DISTRICT = ROOT / "examples" / "district"
CHROMIUM = shutil.which("chromium")
ARGS = [
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    *(["--no-sandbox"] if os.geteuid() == 0 else []),  # root cannot use the sandbox
]
PEOPLE = [
    ConsoleActor(Actor("citizen-7"), "市民 citizen-7"),
    ConsoleActor(Actor("disp-1", roles=frozenset({"dispatcher"})), "调度员 disp-1"),
    ConsoleActor(Actor("water-1", units=frozenset({"YS-WATER"})), "供水 water-1"),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI has no chromium on PATH: .ci/run installs it with apt-get")
        pytest.skip("no chromium on PATH (apt-get install chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield launched
        launched.close()


def sign_in(page: Any, base: str, label: str) -> None:
    page.goto(f"{base}/console/?lang=en")
    page.get_by_role("button", name=label).click()
    page.wait_for_url("**/console/inbox")


def fire(page: Any, trigger: str, **fields: str) -> None:
    form = page.locator(f"#fire-{trigger}")
    for name, value in fields.items():
        target = form.locator(f"[name={name}]")
        if target.evaluate("e => e.tagName") == "SELECT":
            target.select_option(value)
        else:
            target.fill(value)
    form.get_by_role("button").click()
    page.wait_for_load_state()


def test_the_loop_is_walked_through_the_console(browser: Any) -> None:
    directory = InMemoryDirectory.from_yaml(DISTRICT / "directory.yaml")
    categories = CategoryCatalog.from_yaml(DISTRICT / "categories.yaml")
    duties = ResponsibilityList.from_yaml(
        DISTRICT / "duties.yaml", directory=directory, categories=categories
    )
    engine = Engine(
        workflows.standard(),
        store=InMemoryStore(),
        responsibilities=duties,
        clock=ManualClock(datetime(2026, 3, 2, 1, 0, tzinfo=UTC)),
    )
    app = create_app(engine, console=ConsoleConfig(actors=PEOPLE))
    ARTEFACTS.mkdir(exist_ok=True)
    with serving(app) as base:
        page = browser.new_page()
        sign_in(page, base, "市民 citizen-7")
        page.goto(f"{base}/console/report")
        page.fill("[name=description]", "Burst pipe <at> the school gate\nWater on the road")
        page.fill("[name=address]", "1 School Road")
        page.fill("[name=area]", "D1.S1.C1.G01")
        page.get_by_role("button", name="Submit").click()
        page.wait_for_url("**/console/cases/*")
        case_id = page.url.rpartition("/")[2]
        assert page.inner_text("#state") == "reported"

        sign_in(page, base, "调度员 disp-1")
        assert page.locator("#inbox .case").count() == 1
        page.screenshot(path=ARTEFACTS / "console-inbox.png", full_page=True)
        page.get_by_role("link", name=case_id).click()
        fire(page, "classify", category="01.01", urgency="urgent")
        assert page.inner_text("#state") == "classified"
        fire(page, "dispatch")  # routed by the responsibility list
        assert page.inner_text("#state") == "assigned"

        sign_in(page, base, "供水 water-1")
        page.get_by_role("link", name=case_id).click()
        fire(page, "accept")
        fire(page, "submit_result", result="Pipe replaced")
        assert page.inner_text("#state") == "handled"

        sign_in(page, base, "调度员 disp-1")
        page.goto(f"{base}/console/cases/{case_id}")
        fire(page, "feedback", message="Fixed on Monday")
        page.goto(f"{base}/console/board")
        assert page.locator("#board").is_visible()

        sign_in(page, base, "市民 citizen-7")
        page.goto(f"{base}/console/cases/{case_id}")
        page.screenshot(path=ARTEFACTS / "console-case.png", full_page=True)
        page.goto(f"{base}/console/cases/{case_id}?lang=zh")
        assert page.inner_text("#state") == "待回访确认"
        fire(page, "confirm", resolved="yes", rating="satisfied")
        assert page.inner_text("#state") == "已关闭"
        history = page.locator("#history tr").count()
        assert history == 1 + 7  # the header, then report to confirm
    closed = engine.get(case_id, viewer=Actor("citizen-7"))
    assert closed.state == "closed"
    # The browser sent the text area's line break as CRLF; the case keeps the LF typed.
    assert closed.description == "Burst pipe <at> the school gate\nWater on the road"
    assert (ARTEFACTS / "console-inbox.png").stat().st_size > 0
