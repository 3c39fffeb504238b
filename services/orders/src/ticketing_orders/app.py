"""The orders service: ``uvicorn --factory ticketing_orders.app:create_app``.

Buyers reserve tickets by ordering them over HTTP; it follows ticket events into its
replica, and expiration and payment events to cancel or complete orders, and
publishes ``order:*`` through its outbox.
"""

from __future__ import annotations

from ticketing_common.events.contracts import (
    ExpirationComplete,
    OrderCancelled,
    OrderCreated,
    PaymentCreated,
    TicketCreated,
    TicketUpdated,
)
from ticketing_common.events.listener import Listener, transactional
from ticketing_common.spec import Parts, ServiceContext, ServiceSpec
from ticketing_orders.listeners import (
    on_expiration_complete,
    on_payment_created,
    on_ticket_created,
    on_ticket_updated,
)
from ticketing_orders.routes import ReservationMetrics, router
from ticketing_orders.settings import Settings
from ticketing_orders.throttle import OrderThrottle


def parts(context: ServiceContext[Settings]) -> Parts:
    database = context.database
    throttle = OrderThrottle(context.settings)
    return Parts(
        provides=[throttle, ReservationMetrics(context.metrics)],
        listeners=[
            Listener(TicketCreated, transactional(database, on_ticket_created)),
            Listener(TicketUpdated, transactional(database, on_ticket_updated)),
            Listener(ExpirationComplete, transactional(database, on_expiration_complete)),
            Listener(PaymentCreated, transactional(database, on_payment_created)),
        ],
        on_shutdown=[throttle.close],
    )


SPEC = ServiceSpec(
    name="orders",
    package="ticketing_orders",
    title="Ticketing orders",
    settings=Settings,
    api_prefix="/api/orders",
    routers=[router],
    parts=parts,
    publishes=(OrderCreated, OrderCancelled),
    consumes=(TicketCreated, TicketUpdated, ExpirationComplete, PaymentCreated),
)
create_app = SPEC.create_app
