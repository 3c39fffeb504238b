"""The tickets service's application: ``uvicorn --factory ticketing_tickets.app:create_app``."""

from __future__ import annotations

from fastapi import FastAPI

from ticketing_common.app import create_event_service_app
from ticketing_tickets.listeners import order_listeners
from ticketing_tickets.routes import router
from ticketing_tickets.settings import Settings

TITLE = "Ticketing tickets"
# The gateway sends only /api/tickets/* to tickets, so the docs are served there too.
DOCS_PREFIX = "/api/tickets"


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_event_service_app(
        settings=settings or Settings(),
        title=TITLE,
        routers=[router],
        listeners=order_listeners,
        docs_prefix=DOCS_PREFIX,
    )
