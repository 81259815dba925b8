"""The pages in real Chromium (Debian's package, driven by Playwright) against the real
server as a subprocess with a seeded history. ``playwright install`` never runs."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RUNNING_IN_CI
from tests.support.servers import RunningServer, run_server
from tests.web.seed import seed

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
AXE = Path(__file__).resolve().parents[2] / ".tools/node_modules/axe-core/axe.min.js"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A server of our own (module-wide) with the demo history."""
    folder = tmp_path_factory.mktemp("web")
    with run_server(
        f"sqlite:///{folder / 'tracker.db'}",
        log_dir=folder,
        extra_args=["--log-level", "warning"],
    ) as server:
        server.seeded = seed(server.url)  # type: ignore[attr-defined]
        yield server


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium from the distribution."""
    missing = ""
    if not Path(CHROMIUM).exists():
        missing = "chromium is not installed"
    else:
        try:
            import playwright.sync_api as sync_api
        except ImportError:
            missing = "playwright is not installed"
    if missing:
        # A skipped page suite in CI would hide broken pages.
        if RUNNING_IN_CI:
            pytest.fail(f"the page tests need a browser under CI=true: {missing}")
        pytest.skip(f"{missing}: `bash scripts/bootstrap.sh --with-test-tools`")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield browser
        browser.close()


class Watched:
    """A page with every request and console error it produced."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.requests: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda request: self.requests.append(request.url))
        page.on(
            "console",
            lambda message: self.errors.append(message.text) if message.type == "error" else None,
        )
        page.on("pageerror", lambda error: self.errors.append(str(error)))


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    """``open_page(**context_options)``: a watched page in a fresh browser context."""
    contexts: list[Any] = []

    def build(**options: Any) -> Watched:
        context = browser.new_context(**options)
        contexts.append(context)
        return Watched(context.new_page())

    yield build
    for context in contexts:
        context.close()


# The in-process app on SQLite and PostgreSQL, as the server tests have it.
from tests.server.conftest import (  # noqa: E402, F401 (fixtures)
    client,
    database_url,
    make_client,
    migrated_sqlite_template,
)
