"""Payments' business rules: charging an order once, and refunding a charge that met a
cancelled order.

Paying spans calls to Stripe that can take seconds, so it is not one request-long
transaction: :func:`pay` owns short transactions around them — check the order,
then (no transaction open) get the order's one PaymentIntent and confirm it, then
record the charge. Event handlers call :func:`refund_cancelled_order` in their own
transaction, like every other service function that takes a session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing_common.app import Worker
from ticketing_common.db import Database
from ticketing_common.events import outbox
from ticketing_common.events.contracts import OrderStatus, PaymentCreated, PaymentRefunded
from ticketing_payments import repository
from ticketing_payments.errors import (
    CardDeclined,
    OrderAlreadyPaid,
    OrderCancelled,
    OrderExpired,
    OrderNotFound,
    PaymentInProgress,
    PaymentProviderUnavailable,
)
from ticketing_payments.models import Payment, PaymentStatus
from ticketing_payments.provider import Intent, IntentNotConfirmable, IntentStatus, PaymentProvider

logger = logging.getLogger("ticketing.payments")

AUTHENTICATION_UNSUPPORTED = (
    "This card needs an authentication step this site does not support; please use another card."
)


async def pay(
    database: Database, provider: PaymentProvider, *, user_id: UUID, order_id: UUID, token: str
) -> Payment:
    """Charge the order's price to the card once; the recorded payment.

    Raises OrderNotFound, OrderCancelled, OrderExpired, OrderAlreadyPaid,
    CardDeclined, InvalidCardToken, PaymentInProgress or PaymentProviderUnavailable.
    """
    amount_cents = await _payable_amount(database, provider, user_id=user_id, order_id=order_id)
    # No transaction is open across these calls: a slow provider must not hold
    # a connection, let alone the order's row lock.
    intent = await provider.intent_for_order(order_id, amount_cents)
    intent = await _charged(provider, intent, order_id=order_id, token=token)
    return await _record(database, provider, order_id=order_id, intent=intent)


async def _payable_amount(
    database: Database, provider: PaymentProvider, *, user_id: UUID, order_id: UUID
) -> int:
    async with database.transaction() as session:
        found = await repository.order_of_user(session, order_id, user_id)
        if found is None:
            raise OrderNotFound(field="orderId")
        order, expired = found
        payment = await repository.payment_of_order(session, order_id)
        if order.status == OrderStatus.CANCELLED:
            unrefunded = payment is not None and payment.status == PaymentStatus.SUCCEEDED
            if not unrefunded:
                raise OrderCancelled()
        elif payment is not None:
            raise OrderAlreadyPaid()
        elif expired:
            raise OrderExpired()
        else:
            return order.price_cents
    # A charge on a cancelled order that an earlier request recorded but could not
    # refund (the provider failed then): refund it now, then refuse as usual.
    async with database.transaction() as session:
        await refund_cancelled_order(session, provider, order_id)
    raise OrderCancelled()


async def _charged(
    provider: PaymentProvider, intent: Intent, *, order_id: UUID, token: str
) -> Intent:
    """The order's intent once it succeeded, charged with ``token`` unless it already was."""
    if intent.succeeded:
        return intent  # paid by an earlier call: never confirm (charge) again
    try:
        confirmed = await provider.confirm(intent.id, order_id=order_id, token=token)
    except IntentNotConfirmable:
        # Race: a concurrent or earlier request (with another card) confirmed it first.
        current = await provider.retrieve(intent.id)
        if current.succeeded:
            return current
        raise PaymentInProgress() from None
    if confirmed.succeeded:
        return confirmed
    if confirmed.status is IntentStatus.REQUIRES_ACTION:
        raise CardDeclined(AUTHENTICATION_UNSUPPORTED, field="token")
    if confirmed.status is IntentStatus.PROCESSING:
        raise PaymentInProgress()
    raise CardDeclined(field="token")


async def _record(
    database: Database, provider: PaymentProvider, *, order_id: UUID, intent: Intent
) -> Payment:
    async with database.transaction() as session:
        order = await repository.lock_order(session, order_id)
        if order is None:  # replica rows are never deleted; checked above
            raise OrderNotFound(field="orderId")
        payment = await repository.insert_payment(
            session, order_id=order_id, stripe_id=intent.id, amount_cents=intent.amount_cents
        )
        if payment is not None:
            await outbox.record(
                session, PaymentCreated(id=payment.id, order_id=order_id, stripe_id=intent.id)
            )
        cancelled = order.status == OrderStatus.CANCELLED
    if cancelled:
        # Race (payment vs expiry): the order was cancelled after this request checked
        # it, and the order:cancelled handler, holding the lock first, found no charge
        # to refund. The charge is recorded (committed above, so a failure from here on
        # cannot lose it) and refunded now; the buyer pays nothing.
        async with database.transaction() as session:
            await refund_cancelled_order(session, provider, order_id)
        raise OrderCancelled()
    if payment is None:
        raise OrderAlreadyPaid()  # a concurrent request recorded the same charge
    return payment


async def refund_cancelled_order(
    session: AsyncSession, provider: PaymentProvider, order_id: UUID
) -> Payment | None:
    """Refund the charge of a cancelled order, once; the refunded payment, or None.

    The order row stays locked across the refund call, on purpose: whoever holds
    the lock (the order:cancelled handler, or the request that recorded the charge)
    is the only one that can mark the payment refunded and publish
    payment:refunded, so a concurrent or redelivered attempt finds it done. If the
    provider fails, the caller's transaction rolls back and the refund is retried
    with the same idempotency key, which Stripe answers with the same refund.
    """
    order = await repository.lock_order(session, order_id)
    if order is None or order.status != OrderStatus.CANCELLED:
        return None
    payment = await repository.payment_of_order(session, order_id)
    if payment is None or payment.status != PaymentStatus.SUCCEEDED:
        return None
    refund_id = await provider.refund(payment.stripe_id, order_id=order_id)
    refunded = await repository.mark_refunded(session, payment.id, refund_id)
    await outbox.record(
        session, PaymentRefunded(id=refunded.id, order_id=order_id, refund_id=refund_id)
    )
    return refunded


async def refund_stranded_charges(database: Database, provider: PaymentProvider) -> int:
    """Refund every charge left on a cancelled order; how many were refunded.

    A charge is left there when a request recorded it on an order cancelled
    meanwhile and its refund failed (the provider was down): nothing else would
    retry it, since the order:cancelled event was handled before the charge
    existed. Each refund is its own transaction under the order's lock, so
    several replicas sweeping at once, or a buyer's retry, refund it once.
    """
    async with database.transaction() as session:
        order_ids = await repository.cancelled_orders_with_charges(session)
    refunded = 0
    for order_id in order_ids:
        try:
            async with database.transaction() as session:
                if await refund_cancelled_order(session, provider, order_id) is not None:
                    refunded += 1
        except PaymentProviderUnavailable:
            logger.warning(
                "refund failed; retried at the next sweep", extra={"order_id": str(order_id)}
            )
    return refunded


def refund_sweeper(provider: PaymentProvider, interval: float) -> Callable[[Database], Worker]:
    """A background loop that runs :func:`refund_stranded_charges` every ``interval`` s."""

    def make(database: Database) -> Worker:
        async def run(stopping: asyncio.Event) -> None:
            while not stopping.is_set():
                refunded = await refund_stranded_charges(database, provider)
                if refunded:
                    logger.info("refunded stranded charges", extra={"refunded": refunded})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), timeout=interval)

        return run

    return make
