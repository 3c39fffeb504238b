"""The orders service: ``uvicorn --factory ticketing_orders.app:create_app``.

Buyers reserve tickets by ordering them over HTTP, refund them, and sellers check
their tickets in at the door (``/api/checkins``); it follows ticket events into its
replica (a withdrawal cancels the orders holding the ticket), and expiration and
payment events to cancel or complete orders, and publishes ``order:*`` through its
outbox.
"""

from __future__ import annotations

from ticketing_common.admission import AdmissionCodes
from ticketing_common.events.contracts import (
    ExpirationComplete,
    OrderCancelled,
    OrderCompleted,
    OrderCreated,
    PaymentCreated,
    TicketCreated,
    TicketUpdated,
    TicketWithdrawn,
)
from ticketing_common.events.listener import Listener, transactional
from ticketing_common.spec import Parts, ServiceContext, ServiceSpec
from ticketing_orders.listeners import (
    created_together,
    on_expiration_complete,
    on_payment_created,
    on_ticket_created,
    on_ticket_updated,
    on_ticket_withdrawn,
    updated_together,
)
from ticketing_orders.routes import ReservationMetrics, checkins_router, router
from ticketing_orders.service import HoldRules, TakenTickets
from ticketing_orders.settings import Settings
from ticketing_orders.throttle import OrderThrottle


def parts(context: ServiceContext[Settings]) -> Parts:
    database = context.database
    throttle = OrderThrottle(context.settings)
    return Parts(
        provides=[
            throttle,
            ReservationMetrics(context.metrics),
            AdmissionCodes.of_secret(context.settings.JWT_KEY),
            HoldRules.from_settings(context.settings),
            TakenTickets(),
        ],
        listeners=[
            Listener(
                TicketCreated,
                transactional(database, on_ticket_created, together=created_together),
            ),
            Listener(
                TicketUpdated,
                transactional(database, on_ticket_updated, together=updated_together),
            ),
            Listener(TicketWithdrawn, transactional(database, on_ticket_withdrawn)),
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
    # Check-ins are orders' too: an admission is decided under its order's locks.
    also_routed={"/api/checkins": [checkins_router]},
    parts=parts,
    publishes=(OrderCreated, OrderCancelled, OrderCompleted),
    consumes=(TicketCreated, TicketUpdated, TicketWithdrawn, ExpirationComplete, PaymentCreated),
)
create_app = SPEC.create_app
