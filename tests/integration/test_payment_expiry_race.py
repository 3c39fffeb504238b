"""Payment and expiry race (SPEC §4 flows 2 to 4): whichever reaches orders first, the
outcome is either a complete order that keeps its ticket, or a cancelled order whose
charge is refunded — never a buyer charged without the ticket.

Both orders of events are forced, not hoped for: the expiry is an expiration:complete
published by the test, and in the second case payments' consumer of order:cancelled is
paused (the JetStream consumer pause API) so the charge is taken while payments still
believes the order is payable.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import stripe

from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import (
    Envelope,
    EventType,
    ExpirationComplete,
    OrderCancelled,
    PaymentRefunded,
)
from ticketing_common.events.listener import ListenerGroup
from ticketing_common.testing import ServedApp, wait_until
from ticketing_common.testing.events import published, published_so_far
from ticketing_stripe_sandbox.testing import StripeApi, stripe_client

from .conftest import SETTLE_SECONDS, Marketplace, dead_letters


async def _reserved(marketplace: Marketplace, buyer: UUID) -> tuple[UUID, UUID]:
    """A ticket listed by someone else and reserved by ``buyer``: (ticket id, order id)."""
    listed = await marketplace.list_ticket(uuid4(), price="64.25")
    ticket_id = UUID(listed["id"])
    await marketplace.replica_at(ticket_id, 0)
    ordered = await marketplace.orders.post(
        "/api/orders", json={"ticketId": str(ticket_id)}, headers=marketplace.as_user(buyer)
    )
    assert ordered.status_code == 201, ordered.text
    order_id = UUID(ordered.json()["id"])

    async def locked() -> bool:
        ticket = await marketplace.ticket(ticket_id)
        return bool(ticket["orderId"] == str(order_id))

    await wait_until(locked, timeout=SETTLE_SECONDS)
    return ticket_id, order_id


async def _pay(
    payments: httpx.AsyncClient, marketplace: Marketplace, buyer: UUID, order_id: UUID
) -> httpx.Response:
    """Pay with the test card once payments knows the order (404 until order:created)."""

    async def known() -> httpx.Response | None:
        response = await payments.post(
            "/api/payments",
            json={"token": "tok_visa", "orderId": str(order_id)},
            headers=marketplace.as_user(buyer),
        )
        return None if response.status_code == 404 else response

    return await wait_until(known, timeout=SETTLE_SECONDS)


async def _order(marketplace: Marketplace, buyer: UUID, order_id: UUID) -> dict[str, Any]:
    response = await marketplace.orders.get(
        f"/api/orders/{order_id}", headers=marketplace.as_user(buyer)
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _acked(bus: EventBus, durable: str) -> None:
    """Wait until a service's consumer has acked (handled and committed) one event."""

    async def acked() -> bool:
        info = await bus.js.consumer_info(bus.subjects.stream, durable)
        floor: int | None = info.ack_floor.consumer_seq if info.ack_floor is not None else None
        return (floor or 0) >= 1

    await wait_until(acked, timeout=SETTLE_SECONDS)


async def _charges(stripe_api: StripeApi, payment_intent: str) -> list[stripe.Charge]:
    client = stripe_client(stripe_api)
    listed = await client.v1.charges.list_async(params={"payment_intent": payment_intent})
    return list(listed.data)


async def test_payment_before_expiry_completes_the_order_and_keeps_the_ticket(
    marketplace: Marketplace,
    payments_app: ServedApp,
    orders_app: ServedApp,
    bus: EventBus,
    stripe_api: StripeApi,
) -> None:
    buyer = uuid4()
    ticket_id, order_id = await _reserved(marketplace, buyer)
    async with payments_app.client() as payments:
        paid = await _pay(payments, marketplace, buyer, order_id)
    assert paid.status_code == 201, paid.text

    async def complete() -> bool:
        order = await _order(marketplace, buyer, order_id)
        return bool(order["status"] == "complete")

    await wait_until(complete, timeout=SETTLE_SECONDS)

    # The expiry fires after the payment reached orders.
    listeners = orders_app.component(ListenerGroup)
    handled = listeners.handled
    await bus.publish(Envelope.of(ExpirationComplete(order_id=order_id)))
    await wait_until(lambda: listeners.handled > handled, timeout=SETTLE_SECONDS)

    assert (await _order(marketplace, buyer, order_id))["status"] == "complete"
    assert (await marketplace.ticket(ticket_id))["orderId"] == str(order_id)
    assert await published_so_far(bus, OrderCancelled) == []
    assert await published_so_far(bus, PaymentRefunded) == []
    [charge] = await _charges(stripe_api, paid.json()["stripeId"])
    assert (charge.status, charge.refunded, charge.amount) == ("succeeded", False, 6425)
    assert await dead_letters(bus) == 0


async def test_expiry_before_payment_cancels_the_order_and_refunds_the_charge(
    marketplace: Marketplace,
    payments_app: ServedApp,
    orders_app: ServedApp,
    bus: EventBus,
    stripe_api: StripeApi,
) -> None:
    buyer = uuid4()
    ticket_id, order_id = await _reserved(marketplace, buyer)
    payments_listeners = payments_app.component(ListenerGroup)
    # Payments has the order (and is ready to charge it) before the expiry is held back.
    await wait_until(lambda: payments_listeners.handled >= 1, timeout=SETTLE_SECONDS)
    held = payments_listeners.durable_name(EventType.ORDER_CANCELLED)
    assert await bus.pause_consumer(held, datetime.now(UTC) + timedelta(minutes=5))

    # The expiry reaches orders first: cancelled, and the ticket is for sale again ...
    await bus.publish(Envelope.of(ExpirationComplete(order_id=order_id)))
    await published(bus, OrderCancelled, 1)

    async def released() -> bool:
        return (await marketplace.ticket(ticket_id))["orderId"] is None

    await wait_until(released, timeout=SETTLE_SECONDS)

    # ... while payments has not heard of it yet, so the card is charged.
    async with payments_app.client() as payments:
        paid = await _pay(payments, marketplace, buyer, order_id)
    assert paid.status_code == 201, paid.text
    intent = paid.json()["stripeId"]
    [charge] = await _charges(stripe_api, intent)
    assert charge.status == "succeeded"

    # payment:created reaches orders: a cancelled order stays cancelled.
    await _acked(bus, orders_app.component(ListenerGroup).durable_name(EventType.PAYMENT_CREATED))
    assert (await _order(marketplace, buyer, order_id))["status"] == "cancelled"

    # order:cancelled reaches payments: the charge is refunded, payment:refunded published.
    assert not await bus.pause_consumer(held, None)
    [refunded] = await published(bus, PaymentRefunded, 1, timeout=SETTLE_SECONDS)
    assert refunded.data.order_id == order_id

    async def charge_refunded() -> bool:
        [charge] = await _charges(stripe_api, intent)
        return bool(charge.refunded)

    await wait_until(charge_refunded, timeout=SETTLE_SECONDS)
    assert (await _order(marketplace, buyer, order_id))["status"] == "cancelled"
    assert (await marketplace.ticket(ticket_id))["orderId"] is None
    again = await marketplace.orders.post(
        "/api/orders", json={"ticketId": str(ticket_id)}, headers=marketplace.as_user(uuid4())
    )
    assert again.status_code == 201, again.text
    assert await dead_letters(bus) == 0
