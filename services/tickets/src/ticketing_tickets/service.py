"""Tickets' business rules: listing, creating and editing tickets.

Functions work in the caller's session and raise domain errors; the request
owns the transaction (it commits when the route returns, rolls back when it
raises). Every change records its event in the outbox in that same
transaction, so the event is published if and only if the change commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing_common.events import outbox
from ticketing_common.events.contracts import TicketCreated, TicketUpdated
from ticketing_common.money import from_cents, to_cents
from ticketing_tickets import repository
from ticketing_tickets.errors import NotTheSeller, TicketNotFound, TicketReserved
from ticketing_tickets.models import Ticket
from ticketing_tickets.schemas import TicketWrite


def ticket_updated(ticket: Ticket) -> TicketUpdated:
    return TicketUpdated(
        id=ticket.id,
        version=ticket.version,
        title=ticket.title,
        price=from_cents(ticket.price_cents),
        user_id=ticket.user_id,
        order_id=ticket.order_id,
    )


async def list_for_sale(session: AsyncSession, *, limit: int, offset: int) -> Sequence[Ticket]:
    return await repository.tickets_for_sale(session, limit=limit, offset=offset)


async def get_ticket(session: AsyncSession, ticket_id: UUID) -> Ticket:
    ticket = await repository.ticket_by_id(session, ticket_id)
    if ticket is None:
        raise TicketNotFound()
    return ticket


async def create_ticket(session: AsyncSession, seller_id: UUID, body: TicketWrite) -> Ticket:
    ticket = await repository.insert_ticket(
        session, title=body.title, price_cents=to_cents(body.price), user_id=seller_id
    )
    await outbox.record(
        session,
        TicketCreated(
            id=ticket.id,
            version=ticket.version,
            title=ticket.title,
            price=from_cents(ticket.price_cents),
            user_id=ticket.user_id,
        ),
    )
    return ticket


async def update_ticket(
    session: AsyncSession, ticket_id: UUID, seller_id: UUID, body: TicketWrite
) -> Ticket:
    # Race: order:created may reserve the ticket concurrently. The write is one
    # conditional UPDATE (see repository.update_unreserved), never check-then-write;
    # only when it changed nothing do we look at the row to say why.
    ticket = await repository.update_unreserved(
        session, ticket_id, seller_id=seller_id, title=body.title, price_cents=to_cents(body.price)
    )
    if ticket is None:
        current = await get_ticket(session, ticket_id)
        if current.user_id != seller_id:
            raise NotTheSeller()
        # The seller's own, existing ticket: an order held it when the UPDATE ran
        # (even if it has been freed since this transaction's snapshot).
        raise TicketReserved()
    await outbox.record(session, ticket_updated(ticket))
    return ticket
