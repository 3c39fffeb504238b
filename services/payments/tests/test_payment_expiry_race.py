"""A payment meeting the order's cancellation (expiry) ends refunded, once (SPEC §4 flow 3).

The charge recorded before order:cancelled arrives (the handler refunds); a
cancellation meeting an attempt that charged nothing (its intent is voided); and
payments racing cancellations, whichever wins. A charge that succeeded but was
never recorded (the process died) is covered by test_crash_recovery.py.
"""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import httpx
import stripe

from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import (
    Envelope,
    OrderStatus,
    PaymentCreated,
    PaymentRefunded,
)
from ticketing_common.events.listener import ListenerGroup
from ticketing_common.testing import ServedApp, published_so_far, wait_until
from ticketing_payments.models import Payment, PaymentStatus
from ticketing_stripe_sandbox.testing import StripeApi, stripe_client

from .conftest import (
    Orders,
    ServePayments,
    Users,
    charges_of,
    order_cancelled,
    outbox_drained,
    pay,
    payment_of,
    replica_order,
)


async def _refunded(db: Database, order_id: UUID) -> Payment:
    async def refunded() -> Payment | None:
        payment = await payment_of(db, order_id)
        return payment if payment is not None and payment.status == PaymentStatus.REFUNDED else None

    return await wait_until(refunded)


async def _assert_refunded_once(
    db: Database, bus: EventBus, stripe_client: stripe.StripeClient, payment: Payment
) -> None:
    """The charge is refunded in full at the provider, and payment:refunded published once."""
    [charge] = await charges_of(stripe_client, payment.stripe_id)
    assert charge.status == "succeeded"
    assert charge.refunded is True
    assert charge.amount_refunded == charge.amount == payment.amount_cents
    await wait_until(lambda: outbox_drained(db))
    events = await published_so_far(bus, PaymentRefunded)
    assert [event.data for event in events] == [
        PaymentRefunded(id=payment.id, order_id=payment.order_id, refund_id=payment.refund_id)
    ]


async def test_order_cancelled_after_the_payment_was_recorded_refunds_it(
    client: httpx.AsyncClient,
    orders: Orders,
    users: Users,
    db: Database,
    bus: EventBus,
    payments: ServedApp,
    stripe_client: stripe.StripeClient,
) -> None:
    order = await orders.placed(price="15")
    paid = await pay(client, users, order)
    assert paid.status_code == 201

    # Orders expired the order before payment:created reached it.
    await orders.cancel(order)

    payment = await _refunded(db, order.id)
    assert payment.refund_id
    await _assert_refunded_once(db, bus, stripe_client, payment)

    # The same order:cancelled delivered again refunds nothing more.
    listeners = payments.component(ListenerGroup)
    handled = listeners.handled
    await bus.publish(Envelope.of(order_cancelled(order)))
    await wait_until(lambda: listeners.handled > handled)
    again = await payment_of(db, order.id)
    assert again is not None
    assert (again.status, again.refund_id) == (PaymentStatus.REFUNDED, payment.refund_id)
    await _assert_refunded_once(db, bus, stripe_client, payment)
    assert listeners.dead_lettered == 0


async def test_cancelling_an_order_whose_card_was_declined_voids_its_intent_for_good(
    client: httpx.AsyncClient,
    orders: Orders,
    users: Users,
    db: Database,
    bus: EventBus,
    payments: ServedApp,
    stripe_client: stripe.StripeClient,
) -> None:
    """The attempt is recorded before the charge, so a cancelled order's intent is found
    and cancelled at Stripe: no confirmation still on its way can ever charge it."""
    order = await orders.placed(price="42")
    declined = await pay(client, users, order, "tok_chargeDeclined")
    assert declined.status_code == 402, declined.text

    await orders.cancel(order)

    async def voided() -> Payment | None:
        payment = await payment_of(db, order.id)
        return payment if payment is not None and payment.status == PaymentStatus.VOIDED else None

    payment = await wait_until(voided)
    intent = await stripe_client.v1.payment_intents.retrieve_async(payment.stripe_id)
    assert intent.status == "canceled"
    again = await pay(client, users, order)
    assert again.status_code == 400
    assert again.json() == {"errors": [{"message": "Order has been cancelled"}]}
    assert [c.status for c in await charges_of(stripe_client, payment.stripe_id)] == ["failed"]
    await wait_until(lambda: outbox_drained(db))
    assert await published_so_far(bus, PaymentCreated) == []
    assert await published_so_far(bus, PaymentRefunded) == []
    assert payments.component(ListenerGroup).dead_lettered == 0


ROUNDS = 6


async def test_payment_racing_the_cancellation_never_leaves_the_buyer_charged(
    serve_payments: ServePayments, bus: EventBus, db: Database, users: Users, stripe_api: StripeApi
) -> None:
    """Payment and order:cancelled at the same moment, several times: whichever wins,
    the buyer ends with nothing charged, and each recorded payment is refunded once."""
    account = stripe_api.with_key(f"sk_test_race{uuid4().hex[:12]}")  # a fresh account
    async with (
        serve_payments(STRIPE_SECRET_KEY=account.secret_key) as served,
        served.client() as client,
    ):
        orders = Orders(bus, db)
        placed = [await orders.placed() for _ in range(ROUNDS)]
        for order in placed:
            paid, _ = await asyncio.gather(
                pay(client, users, order), bus.publish(Envelope.of(order_cancelled(order)))
            )
            assert paid.status_code in {201, 400}, paid.text

        async def settled() -> bool:
            for order in placed:
                copy = await replica_order(db, order.id)
                payment = await payment_of(db, order.id)
                if copy is None or copy.status != OrderStatus.CANCELLED:
                    return False
                # Charged and refunded, or never charged and voided: nothing kept.
                settled = {PaymentStatus.REFUNDED, PaymentStatus.VOIDED}
                if payment is not None and payment.status not in settled:
                    return False
            return await outbox_drained(db)

        await wait_until(settled)
        assert served.component(ListenerGroup).dead_lettered == 0

    sdk = stripe_client(account)
    intents = (await sdk.v1.payment_intents.list_async({"limit": 100})).data
    for intent in intents:
        for charge in await charges_of(sdk, intent.id):
            # Nothing kept: a charge either failed or was refunded in full.
            assert charge.status != "succeeded" or charge.amount_refunded == charge.amount
    refunded_orders = [
        event.data.order_id for event in await published_so_far(bus, PaymentRefunded)
    ]
    recorded = [event.data.order_id for event in await published_so_far(bus, PaymentCreated)]
    assert sorted(refunded_orders) == sorted(recorded)  # each recorded charge refunded once
