"""`make screenshots`: PNGs of every page from a seeded demo, into docs/screenshots/.

Starts the bundled server on a fresh SQLite database in a temporary folder, writes the
demo history of tests/web/seed.py through the API, and photographs each page with
Debian's Chromium through Playwright (never `playwright install`).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.servers import run_server  # noqa: E402
from tests.web.conftest import ARGS, CHROMIUM  # noqa: E402
from tests.web.seed import seed  # noqa: E402

OUT = ROOT / "docs" / "screenshots"


def main() -> None:
    """Seed a server, photograph each page (light; the board dark too)."""
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory() as folder,
        run_server(
            f"sqlite:///{folder}/tracker.db",
            log_dir=Path(folder),
            extra_args=["--log-level", "warning"],
        ) as server,
    ):
        made = seed(server.url)
        event = made["shipped"]["metadata"]["id"]
        pages = {
            "board": "/",
            "timeline": "/timeline",
            "event": f"/events/{event}",
            "locks": "/locks",
            "freezes": "/freezes",
            "insights": "/insights?service=api&environment=production",
        }
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for scheme in ("light", "dark"):
                context = browser.new_context(
                    viewport={"width": 1280, "height": 900}, color_scheme=scheme
                )
                page = context.new_page()
                for name, path in pages.items():
                    if scheme == "dark" and name != "board":
                        continue
                    page.goto(server.url + path)
                    target = OUT / (f"{name}.png" if scheme == "light" else f"{name}-dark.png")
                    page.screenshot(path=str(target), full_page=True)
                    print(f"wrote {target.relative_to(ROOT)}")
                context.close()
            browser.close()


if __name__ == "__main__":
    main()
