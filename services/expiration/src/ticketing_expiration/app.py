"""The expiration service's application: ``uvicorn --factory ticketing_expiration.app:create_app``.

No database: the bus (order:created in, expiration:complete out) and Redis (the
delayed jobs). The arq worker and the listeners run for the app's lifetime;
``/readyz`` checks NATS and Redis.
"""

from __future__ import annotations

from fastapi import FastAPI

from ticketing_common.app import ServiceRuntime, create_service_app
from ticketing_common.events.bus import EventBus
from ticketing_common.events.listener import RetryPolicy
from ticketing_expiration.jobs import JobWorker
from ticketing_expiration.listeners import listener_group
from ticketing_expiration.repository import JobStore
from ticketing_expiration.routes import router
from ticketing_expiration.service import LatenessStats
from ticketing_expiration.settings import Settings

TITLE = "Ticketing expiration"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    bus = EventBus.from_settings(settings)
    store = JobStore(settings.REDIS_URL, settings.queue_name)
    worker = JobWorker(settings, store, bus, LatenessStats(settings.EXPIRATION_STATS_WINDOW))
    listeners = listener_group(bus, store, RetryPolicy.from_settings(settings))
    runtime = ServiceRuntime(
        bus=bus,
        # Told to stop together; each finishes its in-flight work before the store and
        # the bus close (on_shutdown runs after the workers returned).
        workers=[listeners.run, worker.run],
        on_startup=[store.connect],
        on_shutdown=[store.close],
        readiness=[store.ping],
    )
    app = create_service_app(settings=settings, title=TITLE, routers=[router], runtime=runtime)
    app.state.store = store
    app.state.worker = worker
    app.state.listeners = listeners
    return app
