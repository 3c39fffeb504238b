"""Orders' business rules: reserving a ticket by ordering it, cancelling, reading.

Functions work in the caller's session and raise domain errors; the request
owns the transaction (it commits when the route returns, rolls back when it
raises), so an order and its outbox event commit together or not at all.
"""

from __future__ import annotations

import logging
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

logger = logging.getLogger("ticketing.orders")


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
    await outbox.record(session, order_created(order))
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
        await _record_cancelled(session, cancelled)
        return
    order = await repository.order_of_user(session, order_id, user_id)
    if order is None:
        raise OrderNotFound()
    if order.status == OrderStatus.COMPLETE:
        raise OrderComplete()
    # Already cancelled (perhaps by a concurrent request): a no-op, and no second event.


async def expire_order(session: AsyncSession, *, order_id: UUID) -> Order | None:
    """The order's time to pay ran out: cancel it unless it is complete (or cancelled).

    The cancelled order, or None when nothing changed. A repeated expiration
    finds the order cancelled and publishes nothing a second time.
    """
    cancelled = await repository.cancel_order(session, order_id)
    if cancelled is not None:
        await _record_cancelled(session, cancelled)
        return cancelled
    if await repository.order_by_id(session, order_id) is None:
        logger.warning("expiration of an unknown order", extra={"order_id": str(order_id)})
    return None


async def complete_order(session: AsyncSession, *, order_id: UUID) -> Order | None:
    """The order was paid: mark it complete. A cancelled order stays cancelled.

    The completed order, or None when it was not payable (already complete,
    or cancelled: payments refunds a charge that raced the cancellation).
    """
    completed = await repository.complete_order(session, order_id)
    if completed is None:
        order = await repository.order_by_id(session, order_id)
        logger.info(
            "payment for an order that is not payable",
            extra={"order_id": str(order_id), "status": order.status if order else None},
        )
    return completed


async def reannounce_orders(session: AsyncSession, order_ids: Sequence[UUID]) -> int:
    """Publish again, through the outbox, the events that brought each order to its state.

    Every order gets its order:created (version 0, as first published) and a
    cancelled one its order:cancelled too: enough for any consumer to rebuild what it
    knows of the order from nothing. Consumers apply events by version, so one that
    has them already changes nothing, except to put right what disagrees with them
    (tickets' lock). The operator's repair when a consumer lost or gave up on an
    order event (docs/concurrency.md). Returns how many events were recorded.
    """
    recorded = 0
    for order in await repository.orders_by_ids(session, order_ids):
        await outbox.record(session, order_created(order))
        recorded += 1
        if order.status == OrderStatus.CANCELLED:
            await _record_cancelled(session, order)
            recorded += 1
    return recorded


def order_created(order: Order) -> OrderCreated:
    """The order's order:created: the order as it was at version 0, when it was created."""
    return OrderCreated(
        id=order.id,
        version=0,
        status=OrderStatus.CREATED,
        user_id=order.user_id,
        expires_at=order.expires_at,
        ticket=PricedTicketRef(id=order.ticket_id, price=from_cents(order.price_cents)),
    )


async def _record_cancelled(session: AsyncSession, order: Order) -> None:
    await outbox.record(
        session,
        OrderCancelled(id=order.id, version=order.version, ticket=TicketRef(id=order.ticket_id)),
    )
