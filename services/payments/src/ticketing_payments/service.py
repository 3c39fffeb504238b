"""Payments' business rules: charging an order once, never keeping money without a
ticket, and settling whatever a crash left unknown.

Money moves only after it is recorded. :func:`pay` runs short transactions around
its calls to Stripe (a slow provider must hold neither a connection nor the
order's row lock):

1. read the order (waiting briefly for the replica) and settle what an earlier
   attempt left behind; then, the order being payable, count the attempt against
   the payment throttle (429 over it; see ``throttle.py``);
2. get the order's one PaymentIntent (idempotency key = the order id);
3. under the order's lock, check it is payable and record the attempt ``pending``
   with the intent and the confirmation's idempotency key — the decision to charge;
4. confirm the intent (the charge);
5. under the order's lock, record the outcome: ``succeeded`` with payment:created
   (or find it recorded by the reconciler: still this request's 201), or
   ``failed`` (a declined card: payment:declined, committed though the buyer gets
   a 402); if the order was cancelled meanwhile, refund at once.

A crash between 3 and 5 leaves a ``pending`` row. :func:`settle` turns any row into
what Stripe says happened, under the order's lock; the reconciler (a background
loop, which also runs at start-up), the order:cancelled handler and a buyer's retry
call it. Every charge thus ends recorded, and refunded if its order is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from uuid import UUID, uuid4

from prometheus_client import Gauge
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing_common.app import Worker, every
from ticketing_common.db import Database
from ticketing_common.errors import TooManyRequests
from ticketing_common.events import outbox
from ticketing_common.events.contracts import (
    OrderStatus,
    PaymentCreated,
    PaymentDeclined,
    PaymentRefunded,
)
from ticketing_common.faults import crash_point
from ticketing_common.metrics import Metrics, Outcomes
from ticketing_payments import repository
from ticketing_payments.errors import (
    AmountNotChargeable,
    CancelledOrderNotPayable,
    CancelledOrderRefunded,
    CardDeclined,
    InvalidCardToken,
    OrderAlreadyPaid,
    OrderExpired,
    OrderNotFound,
    PaymentInProgress,
    PaymentProviderUnavailable,
)
from ticketing_payments.models import OrderReplica, Payment, PaymentStatus
from ticketing_payments.provider import (
    Intent,
    IntentNotConfirmable,
    IntentStatus,
    PaymentProvider,
    confirm_key,
)
from ticketing_payments.throttle import PaymentThrottle

logger = logging.getLogger("ticketing.payments")

AUTHENTICATION_UNSUPPORTED = (
    "This card needs an authentication step this site does not support; please use another card."
)
# How often a payment for an order the replica has not received yet looks again.
REPLICA_POLL_SECONDS = 0.05
# Intent states in which nothing was charged and no confirmation is under way.
UNPAID_INTENT = frozenset(
    {
        IntentStatus.REQUIRES_PAYMENT_METHOD,
        IntentStatus.REQUIRES_CONFIRMATION,
        IntentStatus.REQUIRES_ACTION,
    }
)
# Errors that leave a settlement to be retried later (the provider is down or busy).
PROVIDER_TROUBLE = (PaymentProviderUnavailable, PaymentInProgress)


class PaymentMetrics(Outcomes):
    """How buyers' payment requests end, and how many payments are in each status."""

    def __init__(self, metrics: Metrics, database: Database) -> None:
        super().__init__(
            metrics,
            "ticketing_payments_attempts",
            "Payment requests (POST /api/payments) by outcome: succeeded (charged and "
            "recorded), declined (402: the card was refused), provider_unavailable (502), "
            "refused (429), rejected (another 4xx), failed (anything else).",
            success="succeeded",
            errors=[
                (CardDeclined, "declined"),
                (PaymentProviderUnavailable, "provider_unavailable"),
                (TooManyRequests, "refused"),
            ],
        )
        self.database = database
        self.by_status = Gauge(
            "ticketing_payments",
            "Payments by status (succeeded, refunded, failed, voided, pending), read from "
            "the database when scraped: every replica reports the same figures.",
            ["status"],
            registry=metrics.registry,
        )
        metrics.on_scrape(self.refresh)

    async def refresh(self) -> None:
        async with self.database.transaction() as session:
            counts = await repository.count_by_status(session)
        for status in PaymentStatus:
            self.by_status.labels(status=status.value).set(counts.get(status, 0))


async def pay(
    database: Database,
    provider: PaymentProvider,
    *,
    user_id: UUID,
    order_id: UUID,
    token: str,
    replica_wait_seconds: float = 0,
    throttle: PaymentThrottle | None = None,
) -> Payment:
    """Charge the order's amount (unit price times quantity) to the card once; the
    recorded payment.

    Raises OrderNotFound, CancelledOrderNotPayable, CancelledOrderRefunded, OrderExpired,
    OrderAlreadyPaid, CardDeclined, InvalidCardToken, AmountNotChargeable,
    PaymentInProgress, PaymentProviderUnavailable, or TooManyRequests from
    ``throttle`` (None: no limit, for callers that are not a buyer's request).
    """
    order, expired = await _buyers_order(
        database, user_id=user_id, order_id=order_id, wait=replica_wait_seconds
    )
    async with database.transaction() as session:
        payment = await repository.payment_of_order(session, order_id)
    if payment is not None and _needs_settling(order, payment):
        earlier = await _settle_earlier_attempt(database, provider, order_id)
        if earlier.charge_to_answer is not None:
            return earlier.charge_to_answer  # an earlier attempt (its process died) charged
        order, expired, payment = earlier.order, earlier.expired, earlier.payment
    _refuse_unless_payable(order, expired=expired, payment=payment)
    if throttle is not None:
        # Only now: an answer from what is recorded (paid, in progress, the charge of a
        # crashed request) is never refused, so a buyer who was charged learns it.
        await throttle.attempt(user_id=user_id, order_id=order_id)
    intent = await provider.intent_for_order(order_id, order.amount_cents)
    await _record_attempt(
        database, order_id=order_id, intent=intent, key=confirm_key(order_id, token)
    )
    crash_point("payments.before_confirm")
    await _charged(database, provider, intent, order_id=order_id, token=token)
    crash_point("payments.before_record")
    return await _record(database, provider, order_id=order_id)


async def _buyers_order(
    database: Database, *, user_id: UUID, order_id: UUID, wait: float
) -> tuple[OrderReplica, bool]:
    """The buyer's order and whether it expired, waiting up to ``wait`` seconds for the
    replica; OrderNotFound when there is none or it is someone else's.

    A buyer may pay the moment orders answered 201, before order:created reached
    this replica: that is lag, not a missing order, so it is waited out (SPEC §3
    keeps 404 for an order that does not exist).
    """
    deadline = time.monotonic() + wait
    while True:
        async with database.transaction() as session:
            found = await repository.order_with_expiry(session, order_id)
        if found is not None or time.monotonic() >= deadline:
            break
        await asyncio.sleep(REPLICA_POLL_SECONDS)
    if found is None or found[0].user_id != user_id:
        raise OrderNotFound(field="orderId")
    return found


@dataclass(frozen=True)
class EarlierAttempt:
    """The order and its payment once an earlier attempt was settled with Stripe."""

    order: OrderReplica
    expired: bool
    payment: Payment | None
    charge_to_answer: Payment | None
    """The earlier attempt's charge, when it is this request's to answer with (201)."""


async def _settle_earlier_attempt(
    database: Database, provider: PaymentProvider, order_id: UUID
) -> EarlierAttempt:
    """Settle what an earlier attempt left with Stripe: record its charge, or refund it
    (void the intent) if the order was cancelled meanwhile.

    A charge may exist that no row records as such (a crash, a failed refund): Stripe
    is asked before anything is decided, so a retry after expiry finds it.
    """
    in_flight = provider.longest_call_seconds
    async with database.transaction() as session:
        settled = await settle_order(session, provider, order_id, in_flight)
        recorded = settled.payment if settled.recorded else None
        # Race (retry vs the request that charged): the charge is this retry's to
        # answer only once that request is surely gone (it crashed); while it may
        # be alive it answers 201 itself, and this retry 409 already paid.
        its_request_is_gone = (
            recorded is not None
            and recorded.status == PaymentStatus.SUCCEEDED
            and await repository.attempt_age_seconds(session, recorded.id) >= in_flight
        )
        found = await repository.order_with_expiry(session, order_id)
    assert found is not None  # replica rows are never deleted
    order, expired = found
    return EarlierAttempt(
        order, expired, settled.payment, charge_to_answer=recorded if its_request_is_gone else None
    )


def _needs_settling(order: OrderReplica, payment: Payment) -> bool:
    if payment.status == PaymentStatus.PENDING:
        return True
    cancelled = order.status == OrderStatus.CANCELLED
    return cancelled and payment.status in repository.UNSETTLED_WHEN_CANCELLED


def _refuse_unless_payable(order: OrderReplica, *, expired: bool, payment: Payment | None) -> None:
    """Raise the reason the order cannot be charged now, if there is one."""
    status = None if payment is None else payment.status
    if order.status == OrderStatus.CANCELLED:
        if status is PaymentStatus.REFUNDED:
            raise CancelledOrderRefunded()
        raise CancelledOrderNotPayable()
    if status in {PaymentStatus.SUCCEEDED, PaymentStatus.REFUNDED}:
        raise OrderAlreadyPaid()
    if status is PaymentStatus.PENDING:
        raise PaymentInProgress()
    if expired:
        raise OrderExpired()


async def _record_attempt(database: Database, *, order_id: UUID, intent: Intent, key: str) -> None:
    """The decision to charge: under the order's lock, check it is still payable and
    record the attempt pending, committed before the card is touched."""
    async with database.transaction() as session:
        order = await repository.lock_order(session, order_id)
        found = await repository.order_with_expiry(session, order_id)
        if order is None or found is None:  # replica rows are never deleted
            raise OrderNotFound(field="orderId")
        payment = await repository.payment_of_order(session, order_id)
        # Race: of concurrent requests, the first to take the lock records the attempt;
        # the others then find it pending (409) or paid.
        _refuse_unless_payable(order, expired=found[1], payment=payment)
        if payment is None:
            await repository.insert_attempt(
                session,
                order_id=order_id,
                stripe_id=intent.id,
                amount_cents=intent.amount_cents,
                idempotency_key=key,
            )
        else:
            await repository.retry_attempt(session, payment.id, key)


async def _charged(
    database: Database, provider: PaymentProvider, intent: Intent, *, order_id: UUID, token: str
) -> Intent:
    """The order's intent once it succeeded, charged with ``token`` unless it already was.

    An attempt that surely charged nothing is marked failed; one whose outcome is
    unknown (the provider failed or timed out) stays pending for :func:`settle`.
    """
    if intent.succeeded:
        return intent  # paid by an earlier call: never confirm (charge) again
    try:
        confirmed = await provider.confirm(intent.id, order_id=order_id, token=token)
    except IntentNotConfirmable:
        # Race: a concurrent or earlier request confirmed it first, or the order was
        # cancelled and its intent voided.
        current = await provider.retrieve(intent.id)
        if current.succeeded:
            return current
        if current.status is IntentStatus.CANCELED:
            raise CancelledOrderNotPayable() from None
        raise PaymentInProgress() from None
    except CardDeclined as declined:
        await _attempt_failed(database, order_id, declined=declined)
        raise
    except (InvalidCardToken, AmountNotChargeable):
        await _attempt_failed(database, order_id)
        raise
    crash_point("payments.after_charge")
    if confirmed.succeeded:
        return confirmed
    if confirmed.status is IntentStatus.PROCESSING:
        raise PaymentInProgress()
    if confirmed.status is IntentStatus.REQUIRES_ACTION:
        refused = CardDeclined(AUTHENTICATION_UNSUPPORTED, field="token")
    else:
        refused = CardDeclined(field="token")
    await _attempt_failed(database, order_id, declined=refused)
    raise refused


async def _attempt_failed(
    database: Database, order_id: UUID, *, declined: CardDeclined | None = None
) -> None:
    """Mark the order's pending attempt failed; for a declined card, also record
    payment:declined with the message the buyer is shown.

    Its own transaction, committed before the request answers 402 (the decline is a
    fact even though the request fails), so the buyer is told by mail as well.
    """
    async with database.transaction() as session:
        order = await repository.lock_order(session, order_id)
        payment = await repository.payment_of_order(session, order_id)
        # Only our own pending attempt: a concurrent settlement may have moved it on.
        if payment is not None and payment.status == PaymentStatus.PENDING:
            await repository.mark_unpaid(session, payment.id, PaymentStatus.FAILED)
        if declined is not None and order is not None:
            # A new id per attempt: each decline is its own event (and its own mail).
            await outbox.record(
                session,
                PaymentDeclined(
                    id=uuid4(), order_id=order_id, user_id=order.user_id, message=str(declined)
                ),
            )


async def _record(database: Database, provider: PaymentProvider, *, order_id: UUID) -> Payment:
    """Record the charge that succeeded (payment:created), or refund it at once if the
    order was cancelled meanwhile."""
    async with database.transaction() as session:
        order = await repository.lock_order(session, order_id)
        if order is None:  # replica rows are never deleted; checked above
            raise OrderNotFound(field="orderId")
        # Race (request vs reconciler or a retry): the reconciler settles every pending
        # attempt, young ones too, so it may record this request's charge first. It is
        # still the charge this request confirmed (the order's one intent): 201, not 409.
        payment = await _recorded(session, order_id) or await repository.payment_of_order(
            session, order_id
        )
        cancelled = order.status == OrderStatus.CANCELLED
    if cancelled:
        # Race (payment vs expiry): the order was cancelled after this request
        # recorded its attempt. The charge is recorded (committed above, so a failure
        # from here on cannot lose it) and refunded now; the buyer pays nothing.
        async with database.transaction() as session:
            settled = await settle_order(session, provider, order_id, 0)
        if settled.payment is not None and settled.payment.status == PaymentStatus.REFUNDED:
            raise CancelledOrderRefunded()
        raise CancelledOrderNotPayable()
    assert payment is not None  # the attempt was recorded before the charge; never deleted
    return payment


async def _recorded(session: AsyncSession, order_id: UUID) -> Payment | None:
    """Mark the order's charge succeeded and record payment:created, unless it already is."""
    payment = await repository.mark_succeeded(session, order_id)
    if payment is not None:
        await outbox.record(
            session, PaymentCreated(id=payment.id, order_id=order_id, stripe_id=payment.stripe_id)
        )
    return payment


@dataclass(frozen=True)
class Settled:
    """What :func:`settle_order` found and did."""

    payment: Payment | None
    recorded: bool = False  # this call recorded the charge (payment:created)
    changed: bool = False


async def settle_order(
    session: AsyncSession, provider: PaymentProvider, order_id: UUID, in_flight_seconds: float
) -> Settled:
    """Bring the order's payment in line with Stripe and with the order, under its lock.

    - A charge that succeeded is recorded (payment:created) if it was not.
    - A cancelled order's charge is refunded (``refund-<order id>``, payment:refunded),
      and an intent of a cancelled order that did not charge is voided at Stripe, so a
      confirmation still on its way can never charge it.
    - A pending attempt that charged nothing is marked failed once it is older than
      ``in_flight_seconds`` (the request that made it is surely gone); a younger one
      may still be confirming and is left alone.

    The order row stays locked across the calls to Stripe, on purpose: whoever holds
    it is the only one who can settle this payment, so a concurrent or redelivered
    settlement finds it done. If Stripe fails, the error propagates: the caller
    commits what was settled so far (each write records a fact) or rolls back, and
    the reconciler tries again.
    """
    order = await repository.lock_order(session, order_id)
    if order is None:
        return Settled(None)
    payment = await repository.payment_of_order(session, order_id)
    if payment is None:
        # Nothing was ever charged: a confirmation always follows a committed attempt.
        return Settled(None)
    cancelled = order.status == OrderStatus.CANCELLED
    before = payment.status
    recorded = False
    if payment.status == PaymentStatus.PENDING or (
        cancelled and payment.status == PaymentStatus.FAILED
    ):
        intent = await provider.retrieve(payment.stripe_id)
        if cancelled and not intent.succeeded and intent.status is not IntentStatus.CANCELED:
            intent = await provider.void(payment.stripe_id)
        if intent.succeeded:
            settled = await _recorded(session, order_id)
            recorded = settled is not None
            payment = settled or payment
        elif intent.status is IntentStatus.CANCELED:
            payment = await repository.mark_unpaid(session, payment.id, PaymentStatus.VOIDED)
        elif intent.status in UNPAID_INTENT and payment.status == PaymentStatus.PENDING:
            age = await repository.attempt_age_seconds(session, payment.id)
            if age >= in_flight_seconds:
                payment = await repository.mark_unpaid(session, payment.id, PaymentStatus.FAILED)
    if cancelled and payment.status == PaymentStatus.SUCCEEDED:
        payment = await _refunded(session, provider, payment)
    return Settled(payment, recorded=recorded, changed=payment.status != before)


async def _refunded(session: AsyncSession, provider: PaymentProvider, payment: Payment) -> Payment:
    refund_id = await provider.refund(payment.stripe_id, order_id=payment.order_id)
    refunded = await repository.mark_refunded(session, payment.id, refund_id)
    await outbox.record(
        session, PaymentRefunded(id=refunded.id, order_id=refunded.order_id, refund_id=refund_id)
    )
    return refunded


async def settle_cancelled_order(
    session: AsyncSession, provider: PaymentProvider, order_id: UUID
) -> None:
    """For the order:cancelled handler, in its transaction: refund or void the order's
    payment. If Stripe fails, the cancellation (and what was settled) still commits and
    the reconciler finishes the job, so the event is never dead-lettered for an outage."""
    try:
        await settle_order(session, provider, order_id, provider.longest_call_seconds)
    except PROVIDER_TROUBLE:
        logger.warning(
            "could not settle the payment of a cancelled order; the reconciler will",
            extra={"order_id": str(order_id)},
        )


async def reconcile(database: Database, provider: PaymentProvider) -> int:
    """Settle every payment that needs it; how many changed.

    That is every pending attempt — a charge that succeeded is recorded at once (the
    process that made it may be dead: after a restart the first pass finds it), one
    that charged nothing is marked failed once older than the longest Stripe call —
    and every payment of a cancelled order not refunded or voided yet (a refund that
    failed, a charge recorded after the cancellation). Each is its own transaction
    under the order's lock, so several replicas reconciling at once, a buyer's retry
    or the order:cancelled handler settle each payment once.
    """
    in_flight = provider.longest_call_seconds
    async with database.transaction() as session:
        order_ids = await repository.unsettled_orders(session)
    changed = 0
    for order_id in order_ids:
        try:
            async with database.transaction() as session:
                if (await settle_order(session, provider, order_id, in_flight)).changed:
                    changed += 1
        except PROVIDER_TROUBLE:
            logger.warning(
                "payment not settled; retried at the next pass", extra={"order_id": str(order_id)}
            )
    return changed


def reconciler(database: Database, provider: PaymentProvider, interval: float) -> Worker:
    """A background loop that runs :func:`reconcile` at start-up, then every ``interval`` s."""

    async def reconcile_and_log() -> None:
        changed = await reconcile(database, provider)
        if changed:
            logger.info("settled payments", extra={"settled": changed})

    return every(interval, reconcile_and_log)
