"""What orders hears: ticket events keep its ticket replica (a withdrawal also cancels
the orders that still hold the ticket); expiration and payment events move an order to
cancelled or complete.

Each change is applied in the owner's version order through ``apply_versioned``:
a redelivered or older event is acked and ignored, and an event that arrives
before its predecessor (a gap) is not acked, so it comes back after it.
"""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing_common.events.contracts import (
    Envelope,
    ExpirationComplete,
    PaymentCreated,
    TicketCreated,
    TicketUpdated,
    TicketWithdrawn,
)
from ticketing_common.events.listener import BatchStep
from ticketing_common.events.replica import (
    Applied,
    Change,
    applied_together,
    apply_change,
    apply_versioned,
)
from ticketing_common.money import to_cents
from ticketing_orders import repository, service
from ticketing_orders.models import TicketReplica

Ticket = TypeVar("Ticket", TicketCreated, TicketUpdated)


async def on_ticket_created(event: Envelope[TicketCreated], session: AsyncSession) -> None:
    await _replicate(event, session)


async def on_ticket_updated(event: Envelope[TicketUpdated], session: AsyncSession) -> None:
    # orderId is the tickets service's view of the reservation; orders has its own.
    await _replicate(event, session)


def ticket_change(event: Envelope[Ticket]) -> Change:
    """What a ticket:created or ticket:updated makes of the ticket replica."""
    ticket = event.data
    return Change(
        id=ticket.id,
        version=ticket.version,
        values={
            "title": ticket.title,
            "price_cents": to_cents(ticket.price),
            "seller_id": ticket.user_id,
            "general_admission": ticket.general_admission,
            "quantity": ticket.quantity,
        },
    )


async def _replicate(event: Envelope[Ticket], session: AsyncSession) -> None:
    applied = await apply_change(session, TicketReplica, ticket_change(event))
    # With the listing's first applied version, in its transaction, so no order can see
    # the listing without its units. Idempotent: later versions add none.
    if applied is Applied.APPLIED and event.data.general_admission:
        await repository.add_units(session, event.data.id, event.data.quantity)


def _with_units(event: Envelope[Ticket]) -> bool:
    return event.data.general_admission


# A fetched batch of ticket:created or ticket:updated, mostly in one statement: a seat's
# change is all its event does; a listing's also gives it its units, so its events go
# through ``_replicate``.
created_together: BatchStep[TicketCreated] = applied_together(
    TicketReplica, ticket_change, unless=_with_units
)
updated_together: BatchStep[TicketUpdated] = applied_together(
    TicketReplica, ticket_change, unless=_with_units
)


async def on_ticket_withdrawn(event: Envelope[TicketWithdrawn], session: AsyncSession) -> None:
    # The ticket's next version (ticket:updated and ticket:withdrawn share one chain):
    # a gap waits for the updates before it.
    withdrawn = event.data
    await apply_versioned(
        session,
        TicketReplica,
        id=withdrawn.id,
        version=withdrawn.version,
        values={"withdrawn": True},
    )
    # Also when redelivered (a duplicate): no new order can hold a withdrawn ticket, so
    # this finds nothing left to cancel and publishes nothing twice.
    await service.cancel_orders_of_withdrawn_ticket(session, ticket_id=withdrawn.id)


async def on_expiration_complete(
    event: Envelope[ExpirationComplete], session: AsyncSession
) -> None:
    # Redelivered or fired twice: the order is already cancelled, nothing is published.
    await service.expire_order(session, order_id=event.data.order_id)


async def on_payment_created(event: Envelope[PaymentCreated], session: AsyncSession) -> None:
    # Paid after the order was cancelled: it stays cancelled, and payments refunds.
    await service.complete_order(session, order_id=event.data.order_id)
