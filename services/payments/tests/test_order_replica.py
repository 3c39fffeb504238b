"""The order replica follows order:created / order:cancelled in version order (SPEC §4),
and a payment for an order still on its way to the replica waits for it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import httpx

from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import (
    Envelope,
    EventType,
    OrderStatus,
    PaymentCreated,
    PricedTicketRef,
)
from ticketing_common.events.listener import ListenerGroup
from ticketing_common.testing import ServedApp, published, wait_until

from .conftest import (
    Orders,
    ServePayments,
    Users,
    order_cancelled,
    order_created,
    pay,
    replica_order,
)


async def test_order_created_is_copied_with_buyer_price_in_cents_and_expiry_then_cancelled(
    orders: Orders, db: Database
) -> None:
    buyer = uuid4()
    order = await orders.placed(buyer=buyer, price="99.99")

    copy = await replica_order(db, order.id)
    assert copy is not None
    assert (copy.user_id, copy.price_cents, copy.status, copy.version) == (
        buyer,
        9999,
        OrderStatus.CREATED,
        0,
    )
    assert copy.expires_at == order.expires_at

    await orders.cancel(order)

    copy = await replica_order(db, order.id)
    assert copy is not None
    assert (copy.status, copy.version, copy.price_cents) == (OrderStatus.CANCELLED, 1, 9999)


async def test_order_cancelled_arriving_before_its_order_created_is_applied_after_it(
    bus: EventBus, db: Database, payments: ServedApp
) -> None:
    order = order_created(buyer=uuid4())

    await bus.publish(Envelope.of(order_cancelled(order)))
    await asyncio.sleep(0.5)  # delivered and held back: nothing to cancel yet
    assert await replica_order(db, order.id) is None

    await bus.publish(Envelope.of(order))

    async def cancelled() -> bool:
        copy = await replica_order(db, order.id)
        return copy is not None and copy.status == OrderStatus.CANCELLED

    await wait_until(cancelled)
    copy = await replica_order(db, order.id)
    assert copy is not None
    assert copy.version == 1
    assert payments.component(ListenerGroup).dead_lettered == 0


async def test_duplicate_order_events_change_nothing(
    orders: Orders, bus: EventBus, db: Database, payments: ServedApp
) -> None:
    order = await orders.placed(price="10")
    await orders.cancel(order)
    listeners = payments.component(ListenerGroup)
    handled = listeners.handled

    # Redelivered with new event ids (so the broker does not de-duplicate them).
    stale = order.model_copy(
        update={"ticket": PricedTicketRef(id=order.ticket.id, price=Decimal("55"))}
    )
    await bus.publish(Envelope.of(stale))
    await bus.publish(Envelope.of(order_cancelled(order)))
    await wait_until(lambda: listeners.handled >= handled + 2)

    copy = await replica_order(db, order.id)
    assert copy is not None
    assert (copy.version, copy.status, copy.price_cents) == (1, OrderStatus.CANCELLED, 1000)
    assert listeners.dead_lettered == 0


async def test_a_payment_sent_before_the_order_reaches_the_replica_waits_for_it_and_pays(
    bus: EventBus,
    db: Database,
    payments: ServedApp,
    client: httpx.AsyncClient,
    users: Users,
) -> None:
    """The buyer pays the moment orders answered 201: order:created is still on its way
    to payments (its consumer is held back here), so the payment waits for it."""
    listeners = payments.component(ListenerGroup)
    held = listeners.durable_name(EventType.ORDER_CREATED)
    assert await bus.pause_consumer(held, datetime.now(UTC) + timedelta(minutes=5))
    order = order_created(buyer=uuid4(), price="12.00")
    await bus.publish(Envelope.of(order))

    request = asyncio.create_task(pay(client, users, order))
    await asyncio.sleep(0.5)  # let the request reach payments; it must not be answered yet
    assert not request.done()
    assert await replica_order(db, order.id) is None

    assert not await bus.pause_consumer(held, None)
    response = await request

    assert response.status_code == 201, response.text
    [event] = await published(bus, PaymentCreated, 1)
    assert event.data.order_id == order.id


async def test_an_order_that_never_reaches_the_replica_is_404_after_the_wait(
    serve_payments: ServePayments, users: Users
) -> None:
    async with (
        serve_payments(ORDER_REPLICA_WAIT_SECONDS=0.3) as served,
        served.client() as client,
    ):
        response = await pay(client, users, order_created(buyer=uuid4()))

    assert response.status_code == 404
    assert response.json() == {"errors": [{"message": "Order not found", "field": "orderId"}]}
