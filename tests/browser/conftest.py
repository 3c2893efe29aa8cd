"""A real server process and Debian's Chromium, driven by Playwright's sync API.

One ``flowyard server start --no-dispatcher`` and one browser serve every
test in this package; each test gets its own browser context (its own
cookies). They are package-scoped, not session-scoped: Playwright's sync API
keeps an event loop running on the main thread while it is open, and the
async tests of other packages need that thread free. The tests stand in for the execution plane: they claim runs the
way the managed dispatcher does (through ``ops``, on the server's own
database) and report states, logs and teardown through the API like the
runner and the dispatcher, so every step is deterministic.

Browser downloads do not work here: Playwright launches the system
Chromium. Without it (or without Playwright) the tests skip on a laptop and
fail under ``CI``.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from flowyard.server.db import create_database
from flowyard.server.ops import claims
from tests.acceptance.server_process import ServerProcess, running_server
from tests.browser import accessibility
from tests.conftest import missing_feature, run_blocking

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Playwright

CHROMIUM = os.environ.get("FLOWYARD_TEST_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-output" / "ui-screenshots"
TIMEOUT_MS = 10_000


@dataclass
class Site:
    """The running server, its admin key and an API client with that key."""

    server: ServerProcess
    home: Path
    admin_key: str
    api: httpx.Client

    @property
    def url(self) -> str:
        return self.server.url

    def claim(self, pool_name: str) -> list[str]:
        """Do what the managed dispatcher does: claim due runs (PENDING, usage opened)."""
        pool = self.api.get(f"/work-pools/{pool_name}")
        assert pool.status_code == 200, pool.text
        pool_id = uuid.UUID(pool.json()["id"])

        async def claim() -> list[str]:
            db = create_database(f"sqlite+aiosqlite:///{self.home / 'flowyard.db'}")
            try:
                async with db.session() as session:
                    result = await claims.claim_runs(session, pool_id, "browser-test-dispatcher")
                return [str(run.id) for run in result.claimed]
            finally:
                await db.dispose()

        return run_blocking(claim())

    def set_state(self, run_id: str, state: str, **body: Any) -> None:
        r = self.api.post(f"/flow-runs/{run_id}/state", json={"type": state, **body})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "ACCEPT", r.text

    def log(self, run_id: str, *lines: tuple[int, str]) -> None:
        r = self.api.post(
            "/logs",
            json={
                "logs": [
                    {
                        "flow_run_id": run_id,
                        "level": level,
                        "message": message,
                        "timestamp": datetime.now(UTC).isoformat(),
                    }
                    for level, message in lines
                ]
            },
        )
        assert r.status_code == 201, r.text


@dataclass
class Shots:
    """Full-page screenshots, numbered in the order they were taken, each page audited."""

    directory: Path
    taken: list[Path] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # accessibility, from every page taken

    def take(self, page: Page, name: str) -> Path:
        path = self.directory / f"{len(self.taken) + 1:02d}-{name}.png"
        page.evaluate("window.scrollTo(0, 0)")  # the sticky sidebar is drawn where it scrolled
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        self.problems += [f"{name} ({page.url}): {p}" for p in accessibility.audit(page)]
        return path


@pytest.fixture(scope="package")
def playwright_instance() -> Iterator[Playwright]:
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError as exc:
        missing_feature(f"Playwright is not installed: {exc}")
    expect.set_options(timeout=TIMEOUT_MS)
    if not os.access(CHROMIUM, os.X_OK):
        missing_feature(f"no Chromium at {CHROMIUM} (scripts/setup.sh --tests installs it)")
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="package")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    try:
        browser = playwright_instance.chromium.launch(executable_path=CHROMIUM, headless=True)
    except Exception as exc:  # Playwright raises its own Error for a browser that will not start
        missing_feature(f"Chromium at {CHROMIUM} did not start: {exc}")
    yield browser
    browser.close()


@pytest.fixture(scope="package")
def site(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[Site]:
    """One server for the package; ``browser`` first, so a missing Chromium skips fast."""
    del browser
    home = tmp_path_factory.mktemp("browser-server") / "home"
    with running_server(home, "--no-dispatcher") as server:
        key = json.loads((home / "credentials").read_text())["api_key"]
        headers = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=f"{server.url}/api", headers=headers, timeout=10) as api:
            yield Site(server, home, key, api)


@pytest.fixture
def page(browser: Browser, site: Site) -> Iterator[Page]:
    """A fresh browser context (no cookies) on the site."""
    context = browser.new_context(base_url=site.url, viewport={"width": 1280, "height": 860})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture(scope="package")
def shots() -> Shots:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for old in SCREENSHOTS.glob("*.png"):
        old.unlink()
    return Shots(SCREENSHOTS)


def sign_in(page: Page, key: str) -> None:
    """Sign in with the keyboard only: the key field has focus, Enter submits."""
    from playwright.sync_api import expect

    if "/sign-in" not in page.url:
        page.goto("/sign-in")
    expect(page.get_by_label("API key")).to_be_focused()
    page.keyboard.type(key)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/sign-in" not in url)
