"""After the purchase, across services (docs/after-purchase.md, flow 6): a buyer's
refund of a paid order, however many times it is clicked at once, cancels the order
once in orders, puts the ticket back on sale in tickets and refunds the charge once in
payments (against the Stripe sandbox)."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import stripe

from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import CancelReason, OrderCancelled, PaymentRefunded
from ticketing_common.testing import ServedApp, wait_until
from ticketing_common.testing.events import published, published_so_far
from ticketing_stripe_sandbox.testing import StripeApi, stripe_client

from .conftest import SETTLE_SECONDS, Marketplace, dead_letters

CLICKS = 5


async def test_concurrent_refunds_of_a_paid_order_cancel_it_once_and_refund_its_charge_once(
    marketplace: Marketplace, payments_app: ServedApp, bus: EventBus, stripe_api: StripeApi
) -> None:
    buyer = uuid4()
    listed = await marketplace.list_ticket(uuid4(), price="30.00")
    ticket_id = UUID(listed["id"])
    await marketplace.replica_at(ticket_id, 0)
    ordered = await marketplace.orders.post(
        "/api/orders", json={"ticketId": str(ticket_id)}, headers=marketplace.as_user(buyer)
    )
    assert ordered.status_code == 201, ordered.text
    order_id = ordered.json()["id"]

    async with payments_app.client() as payments:

        async def pay() -> str | None:
            # 404 until payments has heard order:created.
            response = await payments.post(
                "/api/payments",
                json={"token": "tok_visa", "orderId": order_id},
                headers=marketplace.as_user(buyer),
            )
            return None if response.status_code == 404 else str(response.json()["stripeId"])

        intent = await wait_until(pay, timeout=SETTLE_SECONDS)

    async def complete() -> bool:
        response = await marketplace.orders.get(
            f"/api/orders/{order_id}", headers=marketplace.as_user(buyer)
        )
        return bool(response.json()["status"] == "complete")

    await wait_until(complete, timeout=SETTLE_SECONDS)

    refunds = await asyncio.gather(
        *(
            marketplace.orders.post(
                f"/api/orders/{order_id}/refund", headers=marketplace.as_user(buyer)
            )
            for _ in range(CLICKS)
        )
    )

    assert {response.status_code for response in refunds} == {200}
    assert {response.json()["cancelReason"] for response in refunds} == {"refunded"}
    [cancelled] = await published(bus, OrderCancelled, 1, timeout=SETTLE_SECONDS)
    assert cancelled.data.reason is CancelReason.REFUNDED
    [refunded] = await published(bus, PaymentRefunded, 1, timeout=SETTLE_SECONDS)
    assert str(refunded.data.order_id) == order_id

    async def charge_refunded() -> stripe.Charge | None:
        listed = await stripe_client(stripe_api).v1.charges.list_async(
            params={"payment_intent": intent}
        )
        [charge] = listed.data
        return charge if charge.refunded else None

    charge = await wait_until(charge_refunded, timeout=SETTLE_SECONDS)
    assert charge.amount_refunded == 3000

    async def for_sale_again() -> bool:
        return (await marketplace.ticket(ticket_id))["orderId"] is None

    await wait_until(for_sale_again, timeout=SETTLE_SECONDS)
    assert len(await published_so_far(bus, OrderCancelled)) == 1
    assert len(await published_so_far(bus, PaymentRefunded)) == 1
    assert await dead_letters(bus) == 0
