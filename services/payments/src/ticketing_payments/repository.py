"""All of payments' SQL: the order replica and the payments."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing_common.events.contracts import OrderStatus
from ticketing_payments.models import Order, Payment, PaymentStatus


async def order_of_user(
    session: AsyncSession, order_id: UUID, user_id: UUID
) -> tuple[Order, bool] | None:
    """The user's order and whether it has expired, by the database's clock (the one
    orders set ``expires_at`` with), or None."""
    row = (
        await session.execute(
            select(Order, Order.expires_at <= func.now()).where(
                Order.id == order_id, Order.user_id == user_id
            )
        )
    ).one_or_none()
    if row is None:
        return None
    order, expired = row
    return order, bool(expired)


async def lock_order(session: AsyncSession, order_id: UUID) -> Order | None:
    """The order, locked until the transaction ends.

    Race (payment vs expiry): the payment route's recording step and the
    order:cancelled handler both take this lock, so whichever comes second sees
    the other's committed effect (the payment, or the cancellation).
    """
    return await session.scalar(
        select(Order)
        .where(Order.id == order_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def payment_of_order(session: AsyncSession, order_id: UUID) -> Payment | None:
    return await session.scalar(
        select(Payment)
        .where(Payment.order_id == order_id)
        .execution_options(populate_existing=True)
    )


async def insert_payment(
    session: AsyncSession, *, order_id: UUID, stripe_id: str, amount_cents: int
) -> Payment | None:
    """The new payment of an order, or None when the order already has one.

    Race: several requests may see the same intent succeed. The unique
    ``order_id`` with ``ON CONFLICT DO NOTHING`` lets exactly one of them record
    it (and report 201); the others insert nothing, without an aborted transaction.
    """
    statement = (
        insert(Payment)
        .values(
            order_id=order_id,
            stripe_id=stripe_id,
            amount_cents=amount_cents,
            status=PaymentStatus.SUCCEEDED.value,
        )
        .on_conflict_do_nothing(index_elements=[Payment.order_id])
        .returning(Payment)
    )
    return (await session.scalars(statement)).one_or_none()


async def mark_refunded(session: AsyncSession, payment_id: UUID, refund_id: str) -> Payment:
    statement = (
        update(Payment)
        .where(Payment.id == payment_id)
        .values(status=PaymentStatus.REFUNDED.value, refund_id=refund_id)
        .returning(Payment)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return (await session.scalars(statement)).one()


async def cancelled_orders_with_charges(session: AsyncSession, limit: int = 100) -> Sequence[UUID]:
    """Orders that are cancelled but whose charge is not refunded (a refund failed)."""
    return (
        await session.scalars(
            select(Payment.order_id)
            .join(Order, Order.id == Payment.order_id)
            .where(
                Payment.status == PaymentStatus.SUCCEEDED.value,
                Order.status == OrderStatus.CANCELLED.value,
            )
            .order_by(Payment.created_at)
            .limit(limit)
        )
    ).all()
