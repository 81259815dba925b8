"""The bundled server's pages: server-rendered HTML (Jinja2), a little JavaScript for live
updates, assets packaged with the server (nothing fetched from elsewhere)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"


class RootPath:
    """Sets the reverse proxy's path prefix (``--root-path``) on every request.

    Starlette routes ``/tracker/x`` and ``/x`` alike under the prefix ``/tracker`` (a
    proxy may strip it or not), and the pages build every link from it.
    """

    def __init__(self, app: Any, root_path: str) -> None:
        self.app = app
        self.root_path = root_path

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and not scope.get("root_path"):
            scope = {**scope, "root_path": self.root_path}
        await self.app(scope, receive, send)


def install(app: FastAPI, *, root_path: str = "") -> None:
    """Add the pages, the live stream and the static assets to the app."""
    from tracker_server.web import pages, time_axis

    app.include_router(pages.router)
    app.include_router(time_axis.router)
    app.include_router(pages.stream_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    if root_path:
        app.add_middleware(RootPath, root_path=root_path)
