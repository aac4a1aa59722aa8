"""The dashboard in a real browser: headless Chromium (JavaScript off: the pages need none) against the
real server. Log in, open the sweep, drill down to the worst rows, then to the dataset's history, and
log out; screenshots go to ``$EVALGATE_SCREENSHOTS`` (default: a tmp_path folder)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser.server import Dashboard, save_sweep_view

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser


@dataclass
class Watched:
    """A browser page and what it did: requests outside the dashboard, console errors."""

    page: Page
    outside: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture
def watched(browser: Browser, dashboard: Dashboard) -> Iterator[Watched]:
    """A fresh browser context (no cookies) with JavaScript disabled: the pages need none."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=False)
    found = Watched(context.new_page())
    found.page.on(
        "request", lambda r: None if r.url.startswith(dashboard.url) else found.outside.append(r.url)
    )
    found.page.on("console", lambda m: found.errors.append(m.text) if m.type == "error" else None)
    try:
        yield found
    finally:
        context.close()


def log_in(watched: Watched, dashboard: Dashboard, screenshots: Path) -> None:
    """Open the dashboard, get sent to the login form, fail once with a wrong token (a 401), log in."""
    from playwright.sync_api import expect

    page = watched.page
    page.goto(f"{dashboard.url}/")
    expect(page).to_have_url(re.compile(r"/login\?next=%2F$"))
    page.fill("#token", "eg_wrong")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_have_text("Unknown or revoked token.")
    assert watched.errors == [
        "Failed to load resource: the server responded with a status of 401 (Unauthorized)"
    ]
    watched.errors.clear()
    page.screenshot(path=screenshots / "login.png")
    page.fill("#token", dashboard.token)
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{dashboard.url}/")


def test_log_in_open_a_sweep_drill_down_and_see_the_history(
    watched: Watched, dashboard: Dashboard, screenshots: Path
) -> None:
    from playwright.sync_api import expect

    week1, page = dashboard.weeks[0], watched.page
    log_in(watched, dashboard, screenshots)
    cookie = next(c for c in page.context.cookies() if c["name"] == "evalgate_session")
    assert cookie.get("httpOnly") is True and cookie.get("sameSite") == "Lax"
    assert dashboard.token.removeprefix("eg_") not in cookie["value"]  # a signed session, not the token
    expect(page.get_by_role("heading", name="Sweeps")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile(r"weekly-2 .* lr=1e-05"))).to_be_visible()
    page.screenshot(path=screenshots / "index.png", full_page=True)

    page.get_by_role("link", name=f"{week1.sweep_id} · weekly-1").click()
    expect(page).to_have_url(f"{dashboard.url}/sweeps/{week1.sweep_id}")
    expect(page.locator("#recommendation")).to_contain_text("Recommended: lr=0.0001")
    chart = page.locator("#trade-off svg.chart")
    expect(chart).to_be_visible()
    expect(chart).to_contain_text("target gain (json_validation/target, Δ mean score, + = better)")
    expect(chart.locator("g.point")).to_have_count(4)
    assert (chart.bounding_box() or {"width": 0})["width"] > 600
    save_sweep_view(page, screenshots / "dashboard.png")
    page.screenshot(path=screenshots / "sweep-full.png", full_page=True)

    forgets = week1.candidates["lr=0.001"]
    page.locator(f'a[href="/candidates/{forgets}/rows?evaluator=answer_accuracy&cohort=ood"]').first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("lr=0.001: worst rows on answer_accuracy/ood")
    expect(page.locator("table.worst tr")).to_have_count(51)  # header + the 50 worst
    expect(page.locator("table.worst")).to_contain_text('{"answer": ')
    page.screenshot(path=screenshots / "rows.png")

    page.get_by_role("link", name=f"back to sweep {week1.sweep_id}").click()
    page.get_by_role("link", name="orders-json@v1").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Decision history: orders-json")
    regression = page.locator("td.new-regression")
    expect(regression).to_have_count(1)
    expect(regression).to_contain_text("regress")
    expect(regression).to_contain_text("NEW")
    page.screenshot(path=screenshots / "history.png", full_page=True)

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(f"{dashboard.url}/login")
    page.goto(f"{dashboard.url}/sweeps/{week1.sweep_id}")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fsweeps%2F\d+$"))
    assert watched.outside == [], "no request may leave the dashboard (no CDN, no external URL)"
    assert watched.errors == [], "no console error (CSP violation, missing resource)"


def test_a_search_shows_each_hyperparameter_against_gain_and_ood_and_a_heatmap(
    browser: Browser, search_dashboard: Dashboard, screenshots: Path
) -> None:
    from playwright.sync_api import expect

    search = search_dashboard.search
    assert search is not None
    context = browser.new_context(viewport={"width": 1280, "height": 900}, java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(f"{search_dashboard.url}/login?next=/sweeps/{search.sweep_id}")
        page.fill("#token", search_dashboard.token)
        page.click("button[type=submit]")
        expect(page).to_have_url(f"{search_dashboard.url}/sweeps/{search.sweep_id}")
        expect(page.locator("#candidates")).to_contain_text("stopped early")
        section = page.locator("#search")
        panels = section.locator("svg.panel")
        expect(panels).to_have_count(4)  # learning_rate and scheduler, each against gain and against ood
        for index in range(4):
            expect(panels.nth(index).locator("g.point")).to_have_count(6)  # the stopped two are not drawn
            assert (panels.nth(index).bounding_box() or {"width": 0})["width"] > 300
        expect(panels.nth(1)).to_contain_text("\N{MINUS SIGN}δ")
        heatmap = section.locator("svg.heatmap")
        expect(heatmap.locator("g.cell")).to_have_count(6)
        expect(heatmap).to_contain_text("mean json_validation/target gain by learning_rate and scheduler")
        expect(section).to_contain_text("Not shown (2, not evaluated")
        section.screenshot(path=screenshots / "search.png")
        page.screenshot(path=screenshots / "search-sweep-full.png", full_page=True)
    finally:
        context.close()
