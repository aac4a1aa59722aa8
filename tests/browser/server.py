"""A real dashboard for browser tests and screenshots: two seeded weekly sweeps, a read token, and
``python -m evalgate serve`` (uvicorn) on a loopback port held by the test."""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.service.api_tokens import create_token
from tests.api.service import Service
from tests.support.sweep_data import SeededSweep, seed_search_sweep, seed_weekly_sweep

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM = Path(os.environ.get("EVALGATE_CHROMIUM", "/usr/bin/chromium"))
START_SECONDS = 120.0


@dataclass(frozen=True)
class Dashboard:
    """A running dashboard: its base URL, a read token, and the two seeded weeks."""

    url: str
    token: str
    weeks: tuple[SeededSweep, SeededSweep]
    search: SeededSweep | None = None
    """A gated rate x schedule search, when asked for."""


@contextmanager
def running_dashboard(
    settings: Settings, store: DatasetStore, folder: Path, *, search: bool = False
) -> Iterator[Dashboard]:
    """Seed weeks 1 and 2 (and with ``search``, a search sweep), make a read token, serve the API; stop
    the server afterwards."""
    weeks = (seed_weekly_sweep(store, folder, week=1), seed_weekly_sweep(store, folder, week=2))
    searched = seed_search_sweep(store, folder) if search else None
    token = create_token(store.sessions, "browser", "read")
    service = Service(settings, folder)
    process, url = service.serve("dashboard")
    try:
        wait_until_healthy(url, lambda: process.poll() is None, folder / "dashboard.log")
        yield Dashboard(url, token, weeks, searched)
    finally:
        service.stop()


def wait_until_healthy(url: str, alive: Callable[[], bool], log: Path) -> None:
    """Poll ``/healthz`` until it answers 200; ``RuntimeError`` with the server log if it dies or stalls."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"the server exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    raise RuntimeError(
        f"no answer from {url}/healthz in {START_SECONDS}s:\n{log.read_text(errors='replace')[-3000:]}"
    )


def save_sweep_view(page: Page, path: Path) -> None:
    """A PNG of the open sweep page from its top to the end of the trade-off chart's section."""
    box = page.locator("#trade-off").bounding_box()
    assert box is not None, "no trade-off section on this page"
    width = page.viewport_size["width"] if page.viewport_size else 1280
    clip = {"x": 0.0, "y": 0.0, "width": float(width), "height": box["y"] + box["height"] + 16}
    page.screenshot(path=path, full_page=True, clip=clip)  # type: ignore[arg-type]
