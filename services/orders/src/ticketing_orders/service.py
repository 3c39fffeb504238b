"""Orders' business rules: reserving a ticket by ordering it, cancelling, reading.

Functions work in the caller's session and raise domain errors; the request
owns the transaction (it commits when the route returns, rolls back when it
raises), so an order and its outbox event commit together or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing_common.events import outbox
from ticketing_common.events.contracts import (
    OrderCancelled,
    OrderCreated,
    OrderStatus,
    PricedTicketRef,
    TicketRef,
)
from ticketing_common.money import from_cents
from ticketing_orders import repository
from ticketing_orders.errors import (
    OrderComplete,
    OrderNotFound,
    OwnTicket,
    TicketAlreadyReserved,
    TicketNotFound,
)
from ticketing_orders.models import Order


async def create_order(
    session: AsyncSession, *, user_id: UUID, ticket_id: UUID, window: timedelta
) -> Order:
    ticket = await repository.ticket_by_id(session, ticket_id)
    if ticket is None:
        raise TicketNotFound(field="ticketId")
    if ticket.seller_id == user_id:
        raise OwnTicket(field="ticketId")
    # No "is it free?" query first: the insert itself decides concurrent buyers.
    order = await repository.insert_reserving_order(
        session, ticket=ticket, user_id=user_id, window=window
    )
    if order is None:
        raise TicketAlreadyReserved(field="ticketId")
    await outbox.record(
        session,
        OrderCreated(
            id=order.id,
            version=order.version,
            status=OrderStatus(order.status),
            user_id=order.user_id,
            expires_at=order.expires_at,
            ticket=PricedTicketRef(id=ticket.id, price=from_cents(ticket.price_cents)),
        ),
    )
    return order


async def order_of_user(session: AsyncSession, *, user_id: UUID, order_id: UUID) -> Order:
    order = await repository.order_of_user(session, order_id, user_id)
    if order is None:
        raise OrderNotFound()
    return order


async def orders_of_user(session: AsyncSession, *, user_id: UUID) -> Sequence[Order]:
    return await repository.orders_of_user(session, user_id)


async def cancel_order(session: AsyncSession, *, user_id: UUID, order_id: UUID) -> None:
    cancelled = await repository.cancel_order(session, order_id, user_id)
    if cancelled is not None:
        await outbox.record(
            session,
            OrderCancelled(
                id=cancelled.id, version=cancelled.version, ticket=TicketRef(id=cancelled.ticket_id)
            ),
        )
        return
    order = await repository.order_of_user(session, order_id, user_id)
    if order is None:
        raise OrderNotFound()
    if order.status == OrderStatus.COMPLETE:
        raise OrderComplete()
    # Already cancelled (perhaps by a concurrent request): a no-op, and no second event.
