"""Two events about one entity through two consumers: every pair, both orders forced.

A service consumes each event type through its own durable consumer, so nothing
orders two types against each other. Each test pauses one consumer (JetStream's
consumer pause API) so the other event goes first, checks that the early event was
retried rather than dropped, resumes, and checks that the services converge: the
state in-order delivery would give, replicas at the owner's version, no dead letter.
See docs/concurrency.md, "Events about one entity through two consumers".
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import text

from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import EventType, OrderCancelled, OrderCreated
from ticketing_common.events.listener import ListenerGroup
from ticketing_common.testing import ServedApp, wait_until
from ticketing_common.testing.events import published, tried_and_not_acked
from ticketing_orders.reannounce import parse, run
from ticketing_orders.settings import Settings as OrdersSettings
from ticketing_tickets.settings import Settings as TicketsSettings

from .conftest import (
    SETTLE_SECONDS,
    Marketplace,
    dead_letters,
    pause,
    resume,
)


def durable(served: ServedApp, event_type: EventType) -> str:
    listeners = served.component(ListenerGroup)
    assert isinstance(listeners, ListenerGroup)
    return listeners.durable_name(event_type)


async def retried(bus: EventBus, served: ServedApp, event_type: EventType) -> None:
    """A service's consumer of a type has tried an event and asked for it again."""
    await tried_and_not_acked(bus, durable(served, event_type), timeout=SETTLE_SECONDS)


async def held_by(market: Marketplace, ticket_id: UUID, order_id: object) -> dict[str, Any]:
    """The owner's ticket once tickets shows it held by ``order_id`` (None: for sale)."""

    async def reached() -> dict[str, Any] | None:
        ticket = await market.ticket(ticket_id)
        return ticket if ticket["orderId"] == order_id else None

    return await wait_until(reached, timeout=SETTLE_SECONDS)


async def order(market: Marketplace, buyer: UUID, ticket_id: UUID) -> str:
    response = await market.orders.post(
        "/api/orders", json={"ticketId": str(ticket_id)}, headers=market.as_user(buyer)
    )
    assert response.status_code == 201, response.text
    order_id: str = response.json()["id"]
    return order_id


async def cancel(market: Marketplace, buyer: UUID, order_id: str) -> None:
    response = await market.orders.delete(f"/api/orders/{order_id}", headers=market.as_user(buyer))
    assert response.status_code == 204, response.text


async def listed(market: Marketplace) -> UUID:
    ticket_id = UUID((await market.list_ticket(uuid4()))["id"])
    await market.replica_at(ticket_id, 0)
    return ticket_id


async def converged(market: Marketplace, ticket_id: UUID, holder: str, version: int) -> None:
    """Tickets shows ``holder`` at ``version``, and orders' copy is at that version."""
    await held_by(market, ticket_id, holder)
    owner, replica = await market.settled(ticket_id)
    assert (owner["orderId"], owner["version"], replica.version) == (holder, version, version)


async def test_a_new_order_overtaking_the_previous_holders_cancel_still_gets_the_ticket(
    marketplace: Marketplace, tickets_app: ServedApp, bus: EventBus
) -> None:
    ticket_id = await listed(marketplace)
    first, second = uuid4(), uuid4()
    first_order = await order(marketplace, first, ticket_id)
    await held_by(marketplace, ticket_id, first_order)

    cancels = durable(tickets_app, EventType.ORDER_CANCELLED)
    await pause(bus, cancels)
    await cancel(marketplace, first, first_order)
    # Orders has the ticket free at once, so the second buyer gets it there ...
    second_order = await order(marketplace, second, ticket_id)
    # ... and that order:created reaches tickets while the first order still holds the
    # ticket: it is tried and asked for again, not acked and dropped.
    await retried(bus, tickets_app, EventType.ORDER_CREATED)
    assert (await marketplace.ticket(ticket_id))["orderId"] == first_order

    await resume(bus, cancels)
    # Locked by the first (v1), freed by its cancel (v2), locked by the second (v3).
    await converged(marketplace, ticket_id, second_order, 3)
    assert await dead_letters(bus) == 0


async def test_orders_made_and_cancelled_behind_a_held_cancel_end_with_the_last_buyer(
    marketplace: Marketplace, tickets_app: ServedApp, bus: EventBus
) -> None:
    ticket_id = await listed(marketplace)
    first, second, third = uuid4(), uuid4(), uuid4()
    first_order = await order(marketplace, first, ticket_id)
    await held_by(marketplace, ticket_id, first_order)

    cancels = durable(tickets_app, EventType.ORDER_CANCELLED)
    await pause(bus, cancels)
    # The whole chain behind one held cancel: the second order is made and cancelled,
    # a third made, while tickets has heard of no cancel at all.
    await cancel(marketplace, first, first_order)
    second_order = await order(marketplace, second, ticket_id)
    await cancel(marketplace, second, second_order)
    third_order = await order(marketplace, third, ticket_id)
    await published(bus, OrderCreated, 3)
    await retried(bus, tickets_app, EventType.ORDER_CREATED)

    await resume(bus, cancels)
    await held_by(marketplace, ticket_id, third_order)
    owner, replica = await marketplace.settled(ticket_id)
    # The second order may have held it for a moment or never (its cancel can settle it
    # before its created is retried): either way the third buyer ends with it.
    assert owner["orderId"] == third_order
    assert owner["version"] == replica.version
    assert owner["version"] in {3, 5}
    assert await dead_letters(bus) == 0


async def test_a_ticket_update_overtaking_its_created_in_orders_is_applied_after_it(
    marketplace: Marketplace, orders_app: ServedApp, bus: EventBus
) -> None:
    seller = uuid4()
    creates = durable(orders_app, EventType.TICKET_CREATED)
    await pause(bus, creates)
    ticket_id = UUID((await marketplace.list_ticket(seller))["id"])
    edited = await marketplace.tickets.put(
        f"/api/tickets/{ticket_id}",
        json={"title": "Edited", "price": "35.00"},
        headers=marketplace.as_user(seller),
    )
    assert edited.status_code == 200, edited.text
    # Orders has no copy yet: the update is a version gap, retried.
    await retried(bus, orders_app, EventType.TICKET_UPDATED)

    await resume(bus, creates)
    await marketplace.replica_at(ticket_id, 1)
    owner, replica = await marketplace.settled(ticket_id)
    assert (replica.title, replica.price_cents, replica.version) == ("Edited", 3500, 1)
    assert owner["version"] == 1
    assert await dead_letters(bus) == 0


async def test_an_order_cancel_overtaking_its_created_in_payments_leaves_it_cancelled(
    marketplace: Marketplace, payments_app: ServedApp, bus: EventBus
) -> None:
    ticket_id = await listed(marketplace)
    buyer = uuid4()
    creates = durable(payments_app, EventType.ORDER_CREATED)
    await pause(bus, creates)
    order_id = await order(marketplace, buyer, ticket_id)
    await cancel(marketplace, buyer, order_id)
    # Payments has no copy of the order: its cancel is a version gap, retried.
    await retried(bus, payments_app, EventType.ORDER_CANCELLED)

    await resume(bus, creates)
    listeners = payments_app.component(ListenerGroup)
    await wait_until(lambda: listeners.handled >= 2, timeout=SETTLE_SECONDS)
    async with payments_app.client() as payments:
        paid = await payments.post(
            "/api/payments",
            json={"token": "tok_visa", "orderId": order_id},
            headers=marketplace.as_user(buyer),
        )
    assert paid.status_code == 400, paid.text
    assert paid.json()["errors"][0]["message"] == "Order has been cancelled"
    assert await dead_letters(bus) == 0


async def _lost_cancel(
    marketplace: Marketplace, tickets_app: ServedApp, bus: EventBus
) -> tuple[UUID, str, str]:
    """A ticket whose first order's order:cancelled never reaches tickets, and a second
    order made after it: (ticket, second order, tickets' paused consumer of cancels)."""
    ticket_id = await listed(marketplace)
    first, second = uuid4(), uuid4()
    first_order = await order(marketplace, first, ticket_id)
    await held_by(marketplace, ticket_id, first_order)
    cancels = durable(tickets_app, EventType.ORDER_CANCELLED)
    await pause(bus, cancels)
    await cancel(marketplace, first, first_order)
    await published(bus, OrderCancelled, 1)
    stream = bus.subjects.stream
    lost = await bus.js.get_last_msg(stream, bus.subjects.of(EventType.ORDER_CANCELLED))
    assert lost.seq is not None
    await bus.js.delete_msg(stream, lost.seq)
    second_order = await order(marketplace, second, ticket_id)
    await retried(bus, tickets_app, EventType.ORDER_CREATED)
    return ticket_id, second_order, cancels


async def test_reannouncing_the_ticket_repairs_a_lock_whose_holders_cancel_was_lost(
    marketplace: Marketplace,
    tickets_app: ServedApp,
    orders_settings: OrdersSettings,
    bus: EventBus,
) -> None:
    ticket_id, second_order, cancels = await _lost_cancel(marketplace, tickets_app, bus)
    await resume(bus, cancels)
    # Nothing else will free the ticket: the operator has orders announce its orders again.
    assert await run(parse(["--ticket", str(ticket_id)]), orders_settings) == 3
    await converged(marketplace, ticket_id, second_order, 3)
    assert await dead_letters(bus) == 0


async def test_reannouncing_the_ticket_repairs_a_ticket_for_sale_under_a_live_order(
    marketplace: Marketplace,
    tickets_settings: TicketsSettings,
    orders_settings: OrdersSettings,
    bus: EventBus,
) -> None:
    ticket_id = await listed(marketplace)
    buyer = uuid4()
    order_id = await order(marketplace, buyer, ticket_id)
    await held_by(marketplace, ticket_id, order_id)
    # The state the handler that dropped events left behind: for sale while orders says
    # held (written here without an event, so the version stays where orders' copy is).
    tickets_db = Database(tickets_settings.DATABASE_URL, pool_size=1)
    try:
        async with tickets_db.transaction() as session:
            await session.execute(
                text("UPDATE tickets SET order_id = NULL WHERE id = :id"), {"id": ticket_id}
            )
    finally:
        await tickets_db.dispose()

    assert await run(parse(["--ticket", str(ticket_id)]), orders_settings) == 1
    # Tickets locks it again (v2) and publishes it, so orders' copy follows.
    await converged(marketplace, ticket_id, order_id, 2)
    assert await dead_letters(bus) == 0
