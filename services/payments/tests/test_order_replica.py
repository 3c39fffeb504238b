"""The order replica follows order:created / order:cancelled in version order (SPEC §4)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from uuid import uuid4

from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import Envelope, OrderStatus, PricedTicketRef
from ticketing_common.testing import ServedApp, wait_until

from .conftest import Orders, order_cancelled, order_created, replica_order


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
    assert payments.app.state.listeners.dead_lettered == 0


async def test_duplicate_order_events_change_nothing(
    orders: Orders, bus: EventBus, db: Database, payments: ServedApp
) -> None:
    order = await orders.placed(price="10")
    await orders.cancel(order)
    listeners = payments.app.state.listeners
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
