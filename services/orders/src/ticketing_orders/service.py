"""Orders' business rules: reserving a ticket by ordering it, cancelling, reading.

Functions work in the caller's session and raise domain errors; the request
owns the transaction (it commits when the route returns, rolls back when it
raises), so an order and its outbox event commit together or not at all.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
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
    ReorderCoolingDown,
    TicketAlreadyReserved,
    TicketNotFound,
    TooManyOpenOrders,
)
from ticketing_orders.models import Order
from ticketing_orders.settings import Settings

logger = logging.getLogger("ticketing.orders")


@dataclass(frozen=True)
class HoldRules:
    """What one buyer may hold (docs/security.md, "Fair holds")."""

    window: timedelta
    """How long a new order holds its ticket."""
    max_open: int
    """Open orders (created or awaiting payment) one buyer may hold at once."""
    reorder_cooldown: timedelta
    """How long after their order of a ticket was cancelled a buyer may not order it again."""

    @classmethod
    def from_settings(cls, settings: Settings) -> HoldRules:
        return cls(
            window=timedelta(seconds=settings.EXPIRATION_WINDOW_SECONDS),
            max_open=settings.MAX_OPEN_ORDERS_PER_USER,
            reorder_cooldown=timedelta(seconds=settings.REORDER_COOLDOWN_SECONDS),
        )


async def create_order(
    session: AsyncSession, *, user_id: UUID, ticket_id: UUID, rules: HoldRules
) -> Order:
    ticket = await repository.ticket_by_id(session, ticket_id)
    if ticket is None:
        raise TicketNotFound(field="ticketId")
    if ticket.seller_id == user_id:
        raise OwnTicket(field="ticketId")
    # The buyer's concurrent orders count their open orders one at a time (the lock
    # lasts until this transaction commits), so together they never pass the cap.
    await repository.lock_buyer(session, user_id)
    await _check_reorder_cooldown(session, user_id, ticket_id, rules)
    await _check_open_orders(session, user_id, rules)
    # No "is it free?" query first: the insert itself decides concurrent buyers.
    order = await repository.insert_reserving_order(
        session, ticket=ticket, user_id=user_id, window=rules.window
    )
    if order is None:
        raise TicketAlreadyReserved(field="ticketId")
    await outbox.record(session, order_created(order))
    return order


async def _check_reorder_cooldown(
    session: AsyncSession, user_id: UUID, ticket_id: UUID, rules: HoldRules
) -> None:
    if not rules.reorder_cooldown:
        return
    left = await repository.reorder_cooldown_left(
        session, user_id=user_id, ticket_id=ticket_id, cooldown=rules.reorder_cooldown
    )
    if left is not None:
        raise ReorderCoolingDown(retry_after=_whole_seconds(left))


async def _check_open_orders(session: AsyncSession, user_id: UUID, rules: HoldRules) -> None:
    held = await repository.open_orders_of_user(session, user_id)
    if held.count < rules.max_open:
        return
    # The earliest a hold can end by itself; paying or cancelling one ends it sooner.
    # An order past its expiry is being cancelled: a second is enough then.
    first_ends = (held.earliest_expiry or held.now) - held.now
    raise TooManyOpenOrders(held=held.count, retry_after=_whole_seconds(first_ends))


def _whole_seconds(duration: timedelta) -> int:
    """A ``Retry-After``: whole seconds, rounded up, at least one."""
    return max(1, math.ceil(duration.total_seconds()))


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
