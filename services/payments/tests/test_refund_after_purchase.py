"""A complete, paid order cancelled after the purchase (the buyer's refund, the seller's
withdrawal) is refunded once at the provider, with payment:refunded once
(docs/after-purchase.md, flows 6 and 7)."""

from __future__ import annotations

import httpx
import pytest
import stripe

from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import CancelReason, Envelope, PaymentRefunded
from ticketing_common.events.listener import ListenerGroup
from ticketing_common.testing import ServedApp, published_so_far, wait_until
from ticketing_payments.models import PaymentStatus

from .conftest import Orders, Users, charges_of, order_cancelled, outbox_drained, pay, payment_of


@pytest.mark.parametrize("reason", [CancelReason.REFUNDED, CancelReason.WITHDRAWN])
async def test_a_paid_order_cancelled_after_the_purchase_is_refunded_once(
    reason: CancelReason,
    client: httpx.AsyncClient,
    orders: Orders,
    users: Users,
    db: Database,
    bus: EventBus,
    payments: ServedApp,
    stripe_client: stripe.StripeClient,
) -> None:
    order = await orders.placed(price="42.00")
    paid = await pay(client, users, order)
    assert paid.status_code == 201, paid.text
    intent_id = paid.json()["stripeId"]

    # Completion does not bump the order's version, so its cancel is version 1.
    await orders.cancel(order, reason)

    async def refunded() -> bool:
        payment = await payment_of(db, order.id)
        return payment is not None and payment.status == PaymentStatus.REFUNDED

    await wait_until(refunded)
    # Redelivered (the same event as a new message): nothing more is refunded.
    listeners = payments.component(ListenerGroup)
    handled = listeners.handled
    await bus.publish(Envelope.of(order_cancelled(order, reason)))
    await wait_until(lambda: listeners.handled > handled)
    await wait_until(lambda: outbox_drained(db))

    payment = await payment_of(db, order.id)
    assert payment is not None
    refunds = await stripe_client.v1.refunds.list_async({"payment_intent": intent_id})
    assert [(r.id, r.amount, r.status) for r in refunds.data] == [
        (payment.refund_id, 4200, "succeeded")
    ]
    [charge] = await charges_of(stripe_client, intent_id)
    assert (charge.refunded, charge.amount_refunded) == (True, 4200)
    events = await published_so_far(bus, PaymentRefunded)
    assert [event.data for event in events] == [
        PaymentRefunded(id=payment.id, order_id=order.id, refund_id=payment.refund_id)
    ]
    assert listeners.dead_lettered == 0
