"""Tickets' business rules: listing, creating, editing and withdrawing tickets, and a
seller's listings with their totals.

Functions work in the caller's session and raise domain errors; the request
owns the transaction (it commits when the route returns, rolls back when it
raises). Every change records its event in the outbox in that same
transaction, so the event is published if and only if the change commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing_common.events import outbox
from ticketing_common.events.contracts import TicketCreated, TicketUpdated, TicketWithdrawn
from ticketing_common.money import from_cents, to_cents
from ticketing_tickets import repository
from ticketing_tickets.errors import (
    ListingWithdrawn,
    NotTheSeller,
    NotTheSellerToWithdraw,
    TicketNotFound,
    TicketReserved,
    TicketSold,
)
from ticketing_tickets.models import Ticket, TicketStatus
from ticketing_tickets.schemas import TicketCreate, TicketWrite


def ticket_updated(ticket: Ticket | repository.PublishedTicket) -> TicketUpdated:
    return TicketUpdated(
        id=ticket.id,
        version=ticket.version,
        title=ticket.title,
        price=from_cents(ticket.price_cents),
        user_id=ticket.user_id,
        order_id=ticket.order_id,
        general_admission=ticket.general_admission,
        quantity=ticket.quantity,
    )


async def list_for_sale(session: AsyncSession, *, limit: int, offset: int) -> Sequence[Ticket]:
    return await repository.tickets_for_sale(session, limit=limit, offset=offset)


async def _existing(session: AsyncSession, ticket_id: UUID) -> Ticket:
    ticket = await repository.ticket_by_id(session, ticket_id)
    if ticket is None:
        raise TicketNotFound()
    return ticket


async def get_ticket(session: AsyncSession, ticket_id: UUID, viewer_id: UUID | None) -> Ticket:
    """The ticket as ``viewer_id`` (None: signed out) may see it: a withdrawn ticket is
    gone for everyone but its seller."""
    ticket = await _existing(session, ticket_id)
    if ticket.status is TicketStatus.WITHDRAWN and ticket.user_id != viewer_id:
        raise TicketNotFound()
    return ticket


async def create_ticket(session: AsyncSession, seller_id: UUID, body: TicketCreate) -> Ticket:
    ticket = await repository.insert_ticket(
        session,
        title=body.title,
        price_cents=to_cents(body.price),
        user_id=seller_id,
        quantity=body.quantity,
    )
    await outbox.record(
        session,
        TicketCreated(
            id=ticket.id,
            version=ticket.version,
            title=ticket.title,
            price=from_cents(ticket.price_cents),
            user_id=ticket.user_id,
            general_admission=ticket.general_admission,
            quantity=ticket.quantity,
        ),
    )
    return ticket


def _not_free(ticket: Ticket) -> TicketReserved | TicketSold | ListingWithdrawn:
    """Why the seller's own ticket could not be changed: an order held it (or a unit of
    it), it was sold (or a unit of it) or withdrawn, when the conditional UPDATE ran
    (even if it has been freed since this transaction's snapshot)."""
    if ticket.status is TicketStatus.WITHDRAWN:
        return ListingWithdrawn()
    if ticket.units.sold > 0:
        return TicketSold()
    return TicketReserved()


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
        current = await _existing(session, ticket_id)
        if current.user_id != seller_id:
            raise NotTheSeller()
        raise _not_free(current)
    await outbox.record(session, ticket_updated(ticket))
    return ticket


async def withdraw_ticket(session: AsyncSession, ticket_id: UUID, seller_id: UUID) -> Ticket:
    """Take the seller's ticket off sale for good (ticket:withdrawn); a repeat is a no-op.

    Race: an order:created being applied at the same moment. Both are one conditional
    UPDATE of the row (repository.withdraw, repository.reserve): the first to lock it
    wins, so the ticket ends reserved (409 here) or withdrawn (never reserved).
    """
    ticket = await repository.withdraw(session, ticket_id, seller_id)
    if ticket is not None:
        await outbox.record(
            session, TicketWithdrawn(id=ticket.id, version=ticket.version, user_id=ticket.user_id)
        )
        return ticket
    current = await _existing(session, ticket_id)
    if current.user_id != seller_id:
        raise NotTheSellerToWithdraw()
    if current.status is TicketStatus.WITHDRAWN:
        return current  # withdrawn before: nothing changes, nothing is published
    raise _not_free(current)


@dataclass(frozen=True)
class SellerTotals:
    """How many of a seller's units are in each state (a seat is one unit; a withdrawn
    listing counts all its units as withdrawn), and what the sold ones fetched."""

    for_sale: int
    reserved: int
    sold: int
    withdrawn: int
    revenue: Decimal


@dataclass(frozen=True)
class SellerListings:
    listings: Sequence[Ticket]
    totals: SellerTotals


async def listings_of(session: AsyncSession, seller_id: UUID) -> SellerListings:
    """Every listing of the seller, newest first, with the totals of the same rows."""
    tickets = await repository.tickets_of_seller(session, seller_id)
    units = [ticket.units for ticket in tickets]
    withdrawn = [ticket for ticket in tickets if ticket.status is TicketStatus.WITHDRAWN]
    totals = SellerTotals(
        for_sale=sum(u.available for u in units),
        reserved=sum(u.held for u in units),
        sold=sum(u.sold for u in units),
        withdrawn=sum(ticket.quantity for ticket in withdrawn),
        revenue=from_cents(sum(ticket.revenue_cents for ticket in tickets)),
    )
    return SellerListings(tickets, totals)
