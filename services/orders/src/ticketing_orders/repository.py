"""All of orders' SQL: the ticket replica and the orders."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from ticketing_common.events.contracts import OrderStatus
from ticketing_orders.models import HOLDING_PREDICATE, Order, TicketReplica

PAYABLE_STATUSES = (OrderStatus.CREATED, OrderStatus.AWAITING_PAYMENT)


async def ticket_by_id(session: AsyncSession, ticket_id: UUID) -> TicketReplica | None:
    return await session.get(TicketReplica, ticket_id)


@dataclass(frozen=True)
class OpenOrders:
    """A buyer's open orders (created or awaiting payment), as the database sees them now."""

    count: int
    earliest_expiry: datetime | None
    now: datetime


async def lock_buyer(session: AsyncSession, user_id: UUID) -> None:
    """Serialise the order creations of one buyer until the transaction ends.

    Race: a buyer's concurrent orders (50 requests at once) would each count the
    same open orders and all pass the cap. A transaction-scoped advisory lock on
    the buyer makes them count one after another: the next one waits here until
    the previous commits or rolls back, and its count (a new snapshot, read
    committed) then sees that order. Taken before the order's insert, and a
    transaction takes one buyer's lock only, so it cannot deadlock with the
    ticket index that the insert waits on. The key is a 64-bit hash of the
    buyer: a collision only makes two buyers wait for each other.
    """
    key = func.hashtextextended(f"orders-of-buyer:{user_id}", 0)
    await session.execute(select(func.pg_advisory_xact_lock(key)))


async def open_orders_of_user(session: AsyncSession, user_id: UUID) -> OpenOrders:
    """How many orders the buyer holds open, and when the first of them expires.

    An order past its ``expiresAt`` still counts until its expiration cancels it:
    until then it still holds its ticket from everyone else.
    """
    row = (
        await session.execute(
            select(func.count(), func.min(Order.expires_at), func.now()).where(
                Order.user_id == user_id, Order.status.in_(PAYABLE_STATUSES)
            )
        )
    ).one()
    return OpenOrders(count=row[0], earliest_expiry=row[1], now=row[2])


async def reorder_cooldown_left(
    session: AsyncSession, *, user_id: UUID, ticket_id: UUID, cooldown: timedelta
) -> timedelta | None:
    """How long until the buyer may order this ticket again after their last order of it
    was cancelled (by them or by its expiry); None when they may now."""
    row = (
        await session.execute(
            select(func.max(Order.cancelled_at), func.now()).where(
                Order.user_id == user_id,
                Order.ticket_id == ticket_id,
                Order.status == OrderStatus.CANCELLED,
                Order.cancelled_at > func.now() - cooldown,
            )
        )
    ).one()
    last_cancelled, now = row
    if last_cancelled is None:
        return None
    left: timedelta = last_cancelled + cooldown - now
    return left if left > timedelta(0) else None


async def insert_reserving_order(
    session: AsyncSession, *, ticket: TicketReplica, user_id: UUID, window: timedelta
) -> Order | None:
    """The new order holding ``ticket``, or None when another order already holds it.

    Race: any number of buyers may find the ticket free at the same moment. The
    partial unique index on ``orders(ticket_id) WHERE status IN (holding)``
    decides between them: ``ON CONFLICT DO NOTHING`` with that index as the
    conflict target makes every insert but the first wait for it to commit and
    then insert nothing, so exactly one succeeds and no transaction is left
    aborted by an IntegrityError.
    """
    statement = (
        insert(Order)
        .values(
            user_id=user_id,
            ticket_id=ticket.id,
            price_cents=ticket.price_cents,
            status=OrderStatus.CREATED,
            expires_at=func.now() + window,  # the database's clock, shared by every replica
            version=0,
        )
        .on_conflict_do_nothing(
            index_elements=[Order.ticket_id],
            index_where=HOLDING_PREDICATE,
        )
        .returning(Order)
    )
    order = (await session.scalars(statement)).one_or_none()
    if order is not None:
        set_committed_value(order, "ticket", ticket)
    return order


async def order_of_user(session: AsyncSession, order_id: UUID, user_id: UUID) -> Order | None:
    return await session.scalar(
        select(Order)
        .options(joinedload(Order.ticket))
        .where(Order.id == order_id, Order.user_id == user_id)
    )


async def orders_of_user(session: AsyncSession, user_id: UUID) -> Sequence[Order]:
    """Newest first."""
    return (
        await session.scalars(
            select(Order)
            .options(joinedload(Order.ticket))
            .where(Order.user_id == user_id)
            .order_by(Order.created_at.desc(), Order.id)
        )
    ).all()


async def cancel_order(
    session: AsyncSession, order_id: UUID, user_id: UUID | None = None
) -> Order | None:
    """Cancel the order (the user's, when given) unless it is cancelled or complete.

    The order, or None when nothing changed. Race: two cancels of one order (a
    double click, or the buyer's cancel meeting the expiration). The conditional
    UPDATE makes the second wait on the row lock, re-check its WHERE against the
    committed row and match nothing, so only one of them bumps the version and
    publishes order:cancelled. The same lock orders a cancel against a completion.
    """
    conditions = [
        Order.id == order_id,
        Order.status.not_in([OrderStatus.CANCELLED, OrderStatus.COMPLETE]),
    ]
    if user_id is not None:
        conditions.append(Order.user_id == user_id)
    statement = (
        update(Order)
        .where(*conditions)
        .values(status=OrderStatus.CANCELLED, version=Order.version + 1, cancelled_at=func.now())
        .returning(Order)
        .execution_options(synchronize_session=False)
    )
    return (await session.scalars(statement)).one_or_none()


async def complete_order(session: AsyncSession, order_id: UUID) -> Order | None:
    """Mark a payable order complete; the order, or None when it is not payable.

    A cancelled order stays cancelled (payments refunds a charge that raced the
    cancel). The version is not bumped: it counts the changes orders publishes,
    and completion is not published, so the replicas of tickets and payments see
    no gap. A complete order is never cancelled, so no later version follows.
    """
    statement = (
        update(Order)
        .where(Order.id == order_id, Order.status.in_(PAYABLE_STATUSES))
        .values(status=OrderStatus.COMPLETE)
        .returning(Order)
        .execution_options(synchronize_session=False)
    )
    return (await session.scalars(statement)).one_or_none()


async def order_by_id(session: AsyncSession, order_id: UUID) -> Order | None:
    return await session.get(Order, order_id)


async def orders_by_ids(session: AsyncSession, order_ids: Sequence[UUID]) -> Sequence[Order]:
    """The orders that exist among ``order_ids``, oldest first."""
    return (
        await session.scalars(
            select(Order).where(Order.id.in_(order_ids)).order_by(Order.created_at, Order.id)
        )
    ).all()


async def order_ids_of_tickets(session: AsyncSession, ticket_ids: Sequence[UUID]) -> list[UUID]:
    """Every order ever made for these tickets, oldest first."""
    return list(
        await session.scalars(
            select(Order.id)
            .where(Order.ticket_id.in_(ticket_ids))
            .order_by(Order.created_at, Order.id)
        )
    )


async def all_order_ids(session: AsyncSession) -> list[UUID]:
    """Every order, oldest first."""
    return list(await session.scalars(select(Order.id).order_by(Order.created_at, Order.id)))
