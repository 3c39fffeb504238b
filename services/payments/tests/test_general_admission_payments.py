"""An order of several units of a general-admission listing is charged, and refunded,
its unit price times its quantity (docs/general-admission.md)."""

from __future__ import annotations

import httpx
import stripe

from ticketing_common.db import Database
from ticketing_common.events.contracts import CancelReason
from ticketing_common.testing import wait_until
from ticketing_payments.models import PaymentStatus

from .conftest import Orders, Users, charges_of, pay, payment_of, replica_order


async def test_an_order_of_three_units_is_charged_and_refunded_three_times_the_unit_price(
    client: httpx.AsyncClient,
    orders: Orders,
    users: Users,
    db: Database,
    stripe_client: stripe.StripeClient,
) -> None:
    order = await orders.placed(price="12.25", quantity=3)
    copy = await replica_order(db, order.id)
    assert copy is not None
    assert (copy.price_cents, copy.quantity) == (1225, 3)

    paid = await pay(client, users, order)

    assert paid.status_code == 201, paid.text
    intent_id = paid.json()["stripeId"]
    payment = await payment_of(db, order.id)
    assert payment is not None
    assert (payment.amount_cents, payment.status) == (3675, PaymentStatus.SUCCEEDED)
    [charge] = await charges_of(stripe_client, intent_id)
    assert (charge.status, charge.amount) == ("succeeded", 3675)

    # The buyer's refund of the whole order returns the whole charge.
    await orders.cancel(order, CancelReason.REFUNDED)

    async def refunded() -> bool:
        settled = await payment_of(db, order.id)
        return settled is not None and settled.status == PaymentStatus.REFUNDED

    await wait_until(refunded)
    refunds = await stripe_client.v1.refunds.list_async({"payment_intent": intent_id})
    assert [(refund.amount, refund.status) for refund in refunds.data] == [(3675, "succeeded")]
    [charge] = await charges_of(stripe_client, intent_id)
    assert (charge.refunded, charge.amount_refunded) == (True, 3675)
