"""Write the docs' screenshot of the sweep page (trade-off chart included) from the browser tests' data.

    python -m tests.browser.screenshot docs/dashboard.png

Seeds the two weekly sweeps into a temporary SQLite database, serves the dashboard, logs in with
headless Debian Chromium (``/usr/bin/chromium``) and saves week 1's sweep page down to its chart.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from evalgate.core.settings import Settings
from evalgate.data.store import DatasetStore
from evalgate.db.migrate import upgrade
from tests.browser.server import CHROMIUM, running_dashboard, save_sweep_view

VIEWPORT = {"width": 1280, "height": 900}


def capture(target: Path) -> Path:
    """Seed, serve, log in, open sweep 1, save the PNG at ``target``."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        url = f"sqlite:///{folder / 'evalgate.db'}"
        upgrade(url)
        settings = Settings(home=folder / "home", database_url=url)
        store = DatasetStore.from_settings(settings)
        with running_dashboard(settings, store, folder) as dashboard, sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
            page = browser.new_page(viewport=VIEWPORT, java_script_enabled=False)  # type: ignore[arg-type]
            page.goto(f"{dashboard.url}/login?next=/sweeps/{dashboard.weeks[0].sweep_id}")
            page.fill("#token", dashboard.token)
            page.click("button[type=submit]")
            page.wait_for_selector("#trade-off svg.chart")
            target.parent.mkdir(parents=True, exist_ok=True)
            save_sweep_view(page, target)
            browser.close()
    return target


def main(argv: list[str]) -> int:
    """``python -m tests.browser.screenshot [PATH]`` (default docs/dashboard.png)."""
    target = capture(Path(argv[0] if argv else "docs/dashboard.png"))
    print(f"wrote {target} ({target.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
