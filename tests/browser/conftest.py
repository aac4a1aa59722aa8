"""Browser-test fixtures: the ``browser`` marker, headless Chromium (Debian's, never downloaded), a
running dashboard on the parametrised database, and the screenshot folder.

Chromium comes from ``apt-get install chromium`` (``/usr/bin/chromium``, or ``EVALGATE_CHROMIUM``) and
Playwright from ``pip install playwright``; without them the tests skip locally and fail under CI
(``CI`` set).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from tests.browser.server import CHROMIUM, Dashboard, running_dashboard

if TYPE_CHECKING:
    from playwright.sync_api import Browser


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``browser`` marker (``--strict-markers`` is on)."""
    config.addinivalue_line("markers", "browser: drives headless Chromium through Playwright")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"browser tests need it in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium driven by Playwright, shared by the session's tests."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install playwright)")
    if not CHROMIUM.is_file():
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def dashboard(settings: Settings, store: DatasetStore, tmp_path: Path) -> Iterator[Dashboard]:
    """Two seeded weekly sweeps served by ``python -m evalgate serve`` on a free loopback port."""
    with running_dashboard(settings, store, tmp_path) as running:
        yield running


@pytest.fixture
def search_dashboard(settings: Settings, store: DatasetStore, tmp_path: Path) -> Iterator[Dashboard]:
    """The two weekly sweeps and a gated rate x schedule search, served as ``dashboard`` is."""
    with running_dashboard(settings, store, tmp_path, search=True) as running:
        yield running


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where screenshots go: ``$EVALGATE_SCREENSHOTS``, else a folder in tmp_path."""
    folder = Path(os.environ.get("EVALGATE_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
