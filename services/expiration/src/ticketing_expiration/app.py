"""The expiration service: ``uvicorn --factory ticketing_expiration.app:create_app``.

No database and no gateway prefix: the bus (order:created in, expiration:complete
out) and Redis (the delayed jobs). The arq worker and the listeners run for the
app's lifetime; ``/readyz`` checks NATS and Redis; ``GET /stats`` is served on
its own port, like ``/healthz``.
"""

from __future__ import annotations

from ticketing_common.events.contracts import ExpirationComplete, OrderCreated
from ticketing_common.events.listener import Listener
from ticketing_common.spec import Parts, ServiceContext, ServiceSpec
from ticketing_expiration.jobs import JobWorker
from ticketing_expiration.listeners import on_order_created
from ticketing_expiration.repository import JobStore
from ticketing_expiration.routes import router
from ticketing_expiration.service import LatenessStats
from ticketing_expiration.settings import Settings


def parts(context: ServiceContext[Settings]) -> Parts:
    settings = context.settings
    store = JobStore(settings.REDIS_URL, settings.queue_name)
    stats = LatenessStats(settings.EXPIRATION_STATS_WINDOW, context.metrics)
    worker = JobWorker(settings, store, context.bus, stats)
    return Parts(
        provides=[store, stats, worker],
        listeners=[Listener(OrderCreated, on_order_created(store))],
        # Stopped together with the listeners; each finishes its in-flight work before
        # the store and the bus close (on_shutdown runs after the workers returned).
        workers=[worker.run],
        on_startup=[store.connect],
        on_shutdown=[store.close],
        readiness=[store.ping],
    )


SPEC = ServiceSpec(
    name="expiration",
    package="ticketing_expiration",
    title="Ticketing expiration",
    settings=Settings,
    routers=[router],
    parts=parts,
    publishes=(ExpirationComplete,),
    consumes=(OrderCreated,),
)
create_app = SPEC.create_app
