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


#: Pages photographed dark too; pages photographed on a 390 x 844 phone too.
DARK = ("board", "lanes-week")
PHONE = ("lanes",)


def main() -> None:
    """Seed a server, photograph each page (light; some dark, some on a phone too).

    ``python scripts/screenshots.py lanes calendar`` photographs only the pages named."""
    from datetime import UTC, datetime, timedelta

    import httpx
    from playwright.sync_api import sync_playwright

    from tests.web.time_axis_seed import seed_time_axis

    only = set(sys.argv[1:])

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
        now = datetime.now(UTC)
        with httpx.Client(base_url=server.url, timeout=10.0) as http:
            seed_time_axis(http, now)
        yesterday = (now - timedelta(days=1)).date().isoformat()
        event = made["shipped"]["metadata"]["id"]
        pages = {
            "board": "/",
            "timeline": "/timeline",
            "event": f"/events/{event}",
            "locks": "/locks",
            "freezes": "/freezes",
            "insights": "/insights?service=api&environment=production",
            "lanes": f"/lanes?at={yesterday}",
            "lanes-week": "/lanes?span=week",
            "calendar": "/calendar",
        }
        if only:
            pages = {name: path for name, path in pages.items() if name in only}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            for scheme, size in (("light", 1280), ("dark", 1280), ("phone", 390)):
                context = browser.new_context(
                    viewport={"width": size, "height": 900 if size > 390 else 844},
                    color_scheme="dark" if scheme == "dark" else "light",
                )
                page = context.new_page()
                for name, path in pages.items():
                    if (scheme == "dark" and name not in DARK) or (
                        scheme == "phone" and name not in PHONE
                    ):
                        continue
                    page.goto(server.url + path)
                    target = OUT / (f"{name}.png" if scheme == "light" else f"{name}-{scheme}.png")
                    page.screenshot(path=str(target), full_page=True)
                    print(f"wrote {target.relative_to(ROOT)}")
                context.close()
            browser.close()


if __name__ == "__main__":
    main()
