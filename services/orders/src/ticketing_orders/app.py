"""The orders service's application: ``uvicorn --factory ticketing_orders.app:create_app``."""

from __future__ import annotations

from fastapi import FastAPI

from ticketing_common.app import create_event_service_app
from ticketing_orders.listeners import listener_group
from ticketing_orders.routes import router
from ticketing_orders.settings import Settings
from ticketing_orders.throttle import OrderThrottle

TITLE = "Ticketing orders"
# The gateway sends only /api/orders/* to orders, so the docs are served there too.
DOCS_PREFIX = "/api/orders"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    throttle = OrderThrottle(settings)
    app = create_event_service_app(
        settings=settings,
        title=TITLE,
        routers=[router],
        listeners=listener_group,
        docs_prefix=DOCS_PREFIX,
        on_shutdown=[throttle.close],
    )
    app.state.throttle = throttle
    return app
