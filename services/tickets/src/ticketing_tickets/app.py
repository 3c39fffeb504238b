"""The tickets service: ``uvicorn --factory ticketing_tickets.app:create_app``.

Sellers list, edit and withdraw tickets over HTTP; it follows orders' events to lock,
sell and release them, and publishes ``ticket:*`` through its outbox.
"""

from __future__ import annotations

from ticketing_common.events.contracts import (
    OrderCancelled,
    OrderCompleted,
    OrderCreated,
    TicketCreated,
    TicketUpdated,
    TicketWithdrawn,
)
from ticketing_common.events.listener import Listener, transactional
from ticketing_common.spec import Parts, ServiceContext, ServiceSpec
from ticketing_tickets.listeners import on_order_cancelled, on_order_completed, on_order_created
from ticketing_tickets.routes import router
from ticketing_tickets.settings import Settings


def parts(context: ServiceContext[Settings]) -> Parts:
    return Parts(
        listeners=[
            Listener(OrderCreated, transactional(context.database, on_order_created)),
            Listener(OrderCompleted, transactional(context.database, on_order_completed)),
            Listener(OrderCancelled, transactional(context.database, on_order_cancelled)),
        ]
    )


SPEC = ServiceSpec(
    name="tickets",
    package="ticketing_tickets",
    title="Ticketing tickets",
    settings=Settings,
    api_prefix="/api/tickets",
    routers=[router],
    parts=parts,
    publishes=(TicketCreated, TicketUpdated, TicketWithdrawn),
    consumes=(OrderCreated, OrderCompleted, OrderCancelled),
)
create_app = SPEC.create_app
