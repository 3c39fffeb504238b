"""Races between tickets and orders, with both real services on one namespace.

The services share nothing but events: tickets owns tickets and locks them for
orders; orders keeps a version-ordered copy of every ticket. Whatever order the
requests and events come in, both must end in the same, consistent state.
"""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import Envelope, TicketCreated, TicketUpdated
from ticketing_common.events.listener import ListenerGroup
from ticketing_common.testing import ServedApp, wait_until

from .conftest import (
    SETTLE_SECONDS,
    Marketplace,
    ServeOrders,
    cents,
    dead_letters,
    replica_of,
)

ROUNDS = 5
NEW_PRICE = "35.00"
OLD_PRICE = "20.50"


async def held_by(market: Marketplace, ticket_id: UUID, order_id: object) -> dict[str, Any]:
    """The owner's ticket once tickets has locked it for ``order_id`` (None: once freed)."""

    async def locked() -> dict[str, Any] | None:
        ticket = await market.ticket(ticket_id)
        return ticket if ticket["orderId"] == order_id else None

    return await wait_until(locked, timeout=SETTLE_SECONDS)


async def test_seller_edit_racing_a_reservation_ends_with_replica_equal_to_owner(
    marketplace: Marketplace,
) -> None:
    outcomes: list[int] = []
    for _ in range(ROUNDS):
        seller, buyer = uuid4(), uuid4()
        listed = await marketplace.list_ticket(seller, price=OLD_PRICE)
        ticket_id = UUID(listed["id"])
        await marketplace.replica_at(ticket_id, 0)

        edit, order = await asyncio.gather(
            marketplace.tickets.put(
                f"/api/tickets/{ticket_id}",
                json={"title": "Concert", "price": NEW_PRICE},
                headers=marketplace.as_user(seller),
            ),
            marketplace.orders.post(
                "/api/orders",
                json={"ticketId": str(ticket_id)},
                headers=marketplace.as_user(buyer),
            ),
        )
        # The replica was free either way, so the buyer's order stands; the edit
        # wins only if it reached tickets before the order:created did.
        assert order.status_code == 201, order.text
        assert edit.status_code in {200, 409}, edit.text
        outcomes.append(edit.status_code)
        order_id = order.json()["id"]

        await held_by(marketplace, ticket_id, order_id)
        owner, replica = await marketplace.settled(ticket_id)

        edited = edit.status_code == 200
        assert owner["orderId"] == order_id
        assert owner["version"] == (2 if edited else 1)
        assert cents(owner["price"]) == cents(NEW_PRICE if edited else OLD_PRICE)
        assert (replica.title, replica.price_cents, replica.version) == (
            owner["title"],
            cents(owner["price"]),
            owner["version"],
        )
        # The order keeps the price it was accepted at: the replica's when orders
        # read it (the old one, unless the edit won at tickets and reached orders'
        # replica first). That is what order:created carried and what the buyer is
        # charged, whatever the replica says later.
        mine = await marketplace.orders.get(
            f"/api/orders/{order_id}", headers=marketplace.as_user(buyer)
        )
        assert mine.status_code == 200, mine.text
        accepted = {cents(OLD_PRICE), cents(NEW_PRICE)} if edited else {cents(OLD_PRICE)}
        assert cents(mine.json()["ticket"]["price"]) in accepted

        # Reserved: the seller can no longer edit it, and nothing changes.
        again = await marketplace.tickets.put(
            f"/api/tickets/{ticket_id}",
            json={"title": "Concert", "price": "99.00"},
            headers=marketplace.as_user(seller),
        )
        assert again.status_code == 409, again.text
        assert await marketplace.ticket(ticket_id) == owner
    assert set(outcomes) <= {200, 409}


async def test_cancel_frees_the_ticket_and_another_buyer_can_reserve_it(
    marketplace: Marketplace,
) -> None:
    seller, first, second = uuid4(), uuid4(), uuid4()
    listed = await marketplace.list_ticket(seller)
    ticket_id = UUID(listed["id"])
    await marketplace.replica_at(ticket_id, 0)

    order = await marketplace.orders.post(
        "/api/orders", json={"ticketId": str(ticket_id)}, headers=marketplace.as_user(first)
    )
    assert order.status_code == 201, order.text
    first_order = order.json()["id"]
    locked = await held_by(marketplace, ticket_id, first_order)
    assert locked["version"] == 1

    cancelled = await marketplace.orders.delete(
        f"/api/orders/{first_order}", headers=marketplace.as_user(first)
    )
    assert cancelled.status_code == 204, cancelled.text
    freed = await held_by(marketplace, ticket_id, None)
    assert freed["version"] == 2

    again = await marketplace.orders.post(
        "/api/orders", json={"ticketId": str(ticket_id)}, headers=marketplace.as_user(second)
    )
    assert again.status_code == 201, again.text
    second_order = again.json()["id"]
    relocked = await held_by(marketplace, ticket_id, second_order)
    assert relocked["version"] == 3

    owner, replica = await marketplace.settled(ticket_id)
    assert owner["orderId"] == second_order
    assert (replica.price_cents, replica.version) == (cents(owner["price"]), 3)


def ticket_history(ticket_id: UUID, seller: UUID, last: int) -> list[Envelope[Any]]:
    """ticket:created v0 then ticket:updated v1..last, each a distinct event."""
    events: list[Envelope[Any]] = [
        Envelope.of(
            TicketCreated(
                id=ticket_id, version=0, title="v0", price=Decimal("10.00"), user_id=seller
            )
        )
    ]
    events += [
        Envelope.of(
            TicketUpdated(
                id=ticket_id,
                version=version,
                title=f"v{version}",
                price=Decimal(10 + version),
                user_id=seller,
            )
        )
        for version in range(1, last + 1)
    ]
    return events


def handled(*served: ServedApp) -> int:
    total = 0
    for app in served:
        listeners = app.component(ListenerGroup)
        assert isinstance(listeners, ListenerGroup)
        total += listeners.handled
    return total


async def test_two_orders_instances_apply_each_ticket_event_exactly_once(
    serve_orders: ServeOrders, bus: EventBus, orders_db: Database
) -> None:
    # Short histories: a gap is retried every 0.25 s up to EVENT_MAX_DELIVERIES (8)
    # times, so a history of at most 8 versions always settles whatever the order.
    tickets, last = 20, 4
    shuffle = random.Random(20261124)
    histories = {uuid4(): uuid4() for _ in range(tickets)}
    events = [
        event
        for ticket_id, seller in histories.items()
        for event in ticket_history(ticket_id, seller, last)
    ]
    shuffle.shuffle(events)

    async with serve_orders() as first, serve_orders() as second:
        for event in events:
            await bus.publish(event)

        async def all_handled() -> bool:
            return handled(first, second) >= len(events)

        await wait_until(all_handled, timeout=SETTLE_SECONDS)
        for ticket_id, seller in histories.items():
            replica = await replica_of(orders_db, ticket_id)
            assert replica is not None
            assert (replica.version, replica.title, replica.price_cents, replica.seller_id) == (
                last,
                f"v{last}",
                (10 + last) * 100,
                seller,
            )
        # Every event was acked exactly once between the two instances, none given up on.
        assert handled(first, second) == len(events)
        for served in (first, second):
            assert served.component(ListenerGroup).dead_lettered == 0
    assert await dead_letters(bus) == 0


async def test_ticket_updates_in_any_order_with_duplicates_end_in_order_state(
    orders_app: ServedApp, bus: EventBus, orders_db: Database
) -> None:
    # Seeded, so a failure replays; each case is a fresh ticket on the running service.
    cases = random.Random(1124)
    finals: dict[UUID, int] = {}
    sellers: dict[UUID, UUID] = {}
    deliveries: list[Envelope[Any]] = []
    for _ in range(15):
        ticket_id, seller, last = uuid4(), uuid4(), cases.randint(1, 6)
        created, *updates = ticket_history(ticket_id, seller, last)
        await bus.publish(created)
        # Every update at least once, some again as separate deliveries (a re-sent event).
        sent = updates + cases.choices(updates, k=cases.randint(0, last))
        cases.shuffle(sent)
        deliveries += [Envelope.of(event.data) for event in sent]
        finals[ticket_id], sellers[ticket_id] = last, seller
    cases.shuffle(deliveries)
    for delivery in deliveries:
        await bus.publish(delivery)

    async def all_final() -> bool:
        for ticket_id, last in finals.items():
            replica = await replica_of(orders_db, ticket_id)
            if replica is None or replica.version < last:
                return False
        return True

    await wait_until(all_final, timeout=SETTLE_SECONDS)
    for ticket_id, last in finals.items():
        replica = await replica_of(orders_db, ticket_id)
        assert replica is not None
        assert (replica.version, replica.title, replica.price_cents, replica.seller_id) == (
            last,
            f"v{last}",
            (10 + last) * 100,
            sellers[ticket_id],
        )
    assert orders_app.component(ListenerGroup).dead_lettered == 0
    assert await dead_letters(bus) == 0
