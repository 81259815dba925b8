"""The ASGI app factory: ``create_app(settings)`` (nothing is built at import time)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from tracker_server import __version__, statistics, web
from tracker_server.alerts import Alerts
from tracker_server.clock import Clock, SystemClock
from tracker_server.db import Database, create_database_engine, upgrade_schema
from tracker_server.dispatcher import Dispatcher
from tracker_server.errors import install_error_handlers
from tracker_server.journal import configure_audit_log
from tracker_server.metrics import Metrics
from tracker_server.middleware import (
    BodySizeLimit,
    CrossSiteWrites,
    JsonBodies,
    SecurityHeaders,
    ServerHeader,
    SnakeCaseQuery,
)
from tracker_server.outbox import Outbox
from tracker_server.routes import (
    batch,
    catalog,
    events,
    freezes,
    insights,
    locks,
    ops,
    queue,
    tokens,
    webhooks,
)
from tracker_server.settings import ServerSettings
from tracker_server.upkeep import StatisticsUpkeep
from tracker_server.wakeup import PostgresListener

DESCRIPTION = """\
The Tracker REST API (v1alpha1) as served by tracker-ci's bundled server: wire-compatible
with BananaOps/tracker, plus lock TTLs, release by key, idempotency keys and API tokens.
Every error answers `{"code", "message", "details": []}` with a real HTTP status.
"""


def create_app(
    settings: ServerSettings | None = None, *, migrate: bool = True, clock: Clock | None = None
) -> FastAPI:
    """Build the app for these settings; creates or upgrades the database schema first.

    ``clock`` is where every "now" of the server comes from (the real time by default).
    """
    settings = settings or ServerSettings()
    configure_audit_log(settings.log_level)
    engine = create_database_engine(settings.database_url)
    if migrate:
        upgrade_schema(engine)
        # The planner's statistics (statistics.py): SQLite never gathers them itself.
        statistics.refresh(engine)
    database = Database(engine)
    # Replicas on PostgreSQL wake each other's lock waiters (wakeup.py).
    # LISTEN on a direct connection when the main URL goes through a pooler.
    queue_listener = PostgresListener(engine, settings.direct_database_url or None)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        dispatcher = app.state.dispatcher
        if settings.webhook_dispatcher:
            dispatcher.start()
        if settings.alert_timer:
            app.state.alerts.start(app.state.outbox)
        queue_listener.start()
        try:
            yield
        finally:
            queue_listener.stop()
            app.state.alerts.stop()
            dispatcher.stop()
            database.dispose()

    app = FastAPI(
        title="Tracker (tracker-ci bundled server)",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.database = database
    app.state.metrics = Metrics()
    database.groups.observe = app.state.metrics.observe_write_group
    app.state.clock = clock or SystemClock()
    # The queue's silent-waiter and claim timeouts count from here at the earliest
    # (store/queue.py Timeouts): waiters could not reach this server before it ran.
    app.state.started_at = app.state.clock.now()
    app.state.upkeep = StatisticsUpkeep(database)
    # Webhooks: deliveries written with each change, sent by this replica's dispatcher.
    app.state.outbox = Outbox()
    app.state.dispatcher = Dispatcher(database, app.state.clock, settings)
    app.state.alerts = Alerts(database, app.state.clock, settings, app.state.metrics)
    install_error_handlers(app)
    app.openapi = lambda: _openapi_with_our_errors(app)  # type: ignore[method-assign]
    for module in (events, batch, locks, queue, freezes, tokens, webhooks, insights, catalog, ops):
        app.include_router(module.router)
    web.install(app, root_path=settings.root_path)  # the pages, live stream, assets
    # Added last = outermost: the header goes on every answer, 413s included.
    app.add_middleware(SnakeCaseQuery)
    app.add_middleware(JsonBodies)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    # A browser's write from another site is refused before its body is read.
    app.add_middleware(CrossSiteWrites)
    app.add_middleware(SecurityHeaders, root_path=settings.root_path)
    app.add_middleware(ServerHeader, version=__version__)
    return app


def _openapi_with_our_errors(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document without FastAPI's 422: bad input is a 400 with our error body."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                operation.get("responses", {}).pop("422", None)
        components = schema.get("components", {}).get("schemas", {})
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        app.openapi_schema = schema
    return app.openapi_schema
