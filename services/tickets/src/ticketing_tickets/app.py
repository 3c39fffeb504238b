"""The tickets service's application: ``uvicorn --factory ticketing_tickets.app:create_app``."""

from __future__ import annotations

from fastapi import FastAPI

from ticketing_common.app import ServiceRuntime, create_service_app
from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.listener import RetryPolicy
from ticketing_common.events.outbox import OutboxRelay
from ticketing_tickets.listeners import order_listeners
from ticketing_tickets.routes import router
from ticketing_tickets.settings import Settings

TITLE = "Ticketing tickets"
# The gateway sends only /api/tickets/* to tickets, so the docs are served there too.
DOCS_PREFIX = "/api/tickets"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    database = Database(settings.DATABASE_URL, pool_size=settings.DATABASE_POOL_SIZE)
    bus = EventBus.from_settings(settings)
    relay = OutboxRelay(database, bus)
    listeners = order_listeners(database, bus, RetryPolicy.from_settings(settings))
    runtime = ServiceRuntime(database=database, bus=bus, workers=[relay.run, listeners.run])
    app = create_service_app(
        settings=settings,
        title=TITLE,
        routers=[router],
        runtime=runtime,
        docs_prefix=DOCS_PREFIX,
    )
    app.state.relay = relay
    app.state.listeners = listeners
    return app
