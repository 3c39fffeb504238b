"""All of payments' SQL: the order replica and the payments."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing_common.events.contracts import OrderStatus
from ticketing_payments.models import OrderReplica, Payment, PaymentStatus


async def order_with_expiry(
    session: AsyncSession, order_id: UUID
) -> tuple[OrderReplica, bool] | None:
    """The order and whether it has expired, by the database's clock (the one orders set
    ``expires_at`` with), or None while the replica has not received it."""
    row = (
        await session.execute(
            select(OrderReplica, OrderReplica.expires_at <= func.now())
            .where(OrderReplica.id == order_id)
            .execution_options(populate_existing=True)
        )
    ).one_or_none()
    if row is None:
        return None
    order, expired = row
    return order, bool(expired)


async def lock_order(session: AsyncSession, order_id: UUID) -> OrderReplica | None:
    """The order, locked until the transaction ends.

    Race (payment vs expiry): the payment route's recording step and the
    order:cancelled handler both take this lock, so whichever comes second sees
    the other's committed effect (the payment, or the cancellation).
    """
    return await session.scalar(
        select(OrderReplica)
        .where(OrderReplica.id == order_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def payment_of_order(session: AsyncSession, order_id: UUID) -> Payment | None:
    return await session.scalar(
        select(Payment)
        .where(Payment.order_id == order_id)
        .execution_options(populate_existing=True)
    )


async def insert_attempt(
    session: AsyncSession,
    *,
    order_id: UUID,
    stripe_id: str,
    amount_cents: int,
    idempotency_key: str,
) -> Payment:
    """The order's first attempt, pending; the caller holds the order's lock, so no other
    row for the order can appear meanwhile (``order_id`` is unique all the same)."""
    statement = (
        insert(Payment)
        .values(
            order_id=order_id,
            stripe_id=stripe_id,
            amount_cents=amount_cents,
            status=PaymentStatus.PENDING,
            idempotency_key=idempotency_key,
        )
        .returning(Payment)
    )
    return (await session.scalars(statement)).one()


async def retry_attempt(session: AsyncSession, payment_id: UUID, idempotency_key: str) -> Payment:
    """A failed attempt pending again, for another confirmation (the same intent)."""
    statement = (
        update(Payment)
        .where(Payment.id == payment_id)
        .values(
            status=PaymentStatus.PENDING,
            idempotency_key=idempotency_key,
            attempted_at=func.clock_timestamp(),
        )
        .returning(Payment)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return (await session.scalars(statement)).one()


async def attempt_age_seconds(session: AsyncSession, payment_id: UUID) -> float:
    """How long ago the payment's latest attempt began, by the database's clock."""
    age = await session.scalar(
        select(func.extract("epoch", func.clock_timestamp() - Payment.attempted_at)).where(
            Payment.id == payment_id
        )
    )
    return float(age or 0)


async def mark_succeeded(session: AsyncSession, order_id: UUID) -> Payment | None:
    """The order's payment marked succeeded, or None when it is not pending or failed.

    Race: the request that charged, the reconciler and the order:cancelled handler may
    each learn that the charge succeeded. Under the order's lock, the first of them
    moves the row to succeeded (and records payment:created); the others find it
    settled and record nothing.
    """
    statement = (
        update(Payment)
        .where(
            Payment.order_id == order_id,
            Payment.status.in_([PaymentStatus.PENDING, PaymentStatus.FAILED]),
        )
        .values(status=PaymentStatus.SUCCEEDED)
        .returning(Payment)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return (await session.scalars(statement)).one_or_none()


async def mark_unpaid(session: AsyncSession, payment_id: UUID, status: PaymentStatus) -> Payment:
    """An attempt that charged nothing: failed (payable again) or voided (never again)."""
    statement = (
        update(Payment)
        .where(Payment.id == payment_id)
        .values(status=status)
        .returning(Payment)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return (await session.scalars(statement)).one()


async def mark_refunded(session: AsyncSession, payment_id: UUID, refund_id: str) -> Payment:
    statement = (
        update(Payment)
        .where(Payment.id == payment_id)
        .values(status=PaymentStatus.REFUNDED, refund_id=refund_id)
        .returning(Payment)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    return (await session.scalars(statement)).one()


# A cancelled order's payment in one of these states may hold money to give back (or an
# intent still able to charge): the order:cancelled handler or the reconciler settles it.
UNSETTLED_WHEN_CANCELLED = (PaymentStatus.PENDING, PaymentStatus.SUCCEEDED, PaymentStatus.FAILED)


async def count_by_status(session: AsyncSession) -> dict[PaymentStatus, int]:
    """How many payments are in each status."""
    rows = await session.execute(select(Payment.status, func.count()).group_by(Payment.status))
    return {status: count for status, count in rows}


async def unsettled_orders(session: AsyncSession, *, limit: int = 100) -> Sequence[UUID]:
    """Orders whose payment the reconciler must settle, oldest attempt first: every
    pending attempt (its process may have died after the charge), and every cancelled
    order whose payment is not refunded or voided (a refund or a void that failed, a
    charge recorded after the cancellation)."""
    pending = Payment.status == PaymentStatus.PENDING
    cancelled = (OrderReplica.status == OrderStatus.CANCELLED) & Payment.status.in_(
        UNSETTLED_WHEN_CANCELLED
    )
    return (
        await session.scalars(
            select(Payment.order_id)
            .join(OrderReplica, OrderReplica.id == Payment.order_id)
            .where(pending | cancelled)
            .order_by(Payment.attempted_at)
            .limit(limit)
        )
    ).all()
