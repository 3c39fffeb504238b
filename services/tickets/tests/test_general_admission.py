"""General-admission listings (docs/general-admission.md): listed with a quantity, their
units counted held and sold from order events, exactly, whatever the order, repetition or
concurrency of those events; listed while units are available; totals in units."""

from __future__ import annotations

import asyncio
import random
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import func, select

from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import (
    CancelReason,
    Envelope,
    OrderCreated,
    TicketCreated,
    TicketUpdated,
)
from ticketing_common.events.listener import ListenerGroup
from ticketing_common.events.outbox import outbox_table
from ticketing_common.testing import ServedApp, wait_until
from ticketing_tickets import repository, service
from ticketing_tickets.errors import TicketReserved
from ticketing_tickets.listeners import (
    CompletedBeforeCreated,
)
from ticketing_tickets.models import OrderRef, Ticket

from .conftest import EventsOf, OrderEvent, cancelled, completed, deliver, deliver_shuffled
from .conftest import created as order_created


def created(ticket_id: UUID, quantity: int, price: str = "40") -> Envelope[OrderCreated]:
    """An order of units, at the $40 the listings here are sold at unless told."""
    return order_created(ticket_id, quantity, price=price)


async def listed(db: Database, quantity: int) -> UUID:
    async with db.transaction() as session:
        ticket = await repository.insert_ticket(
            session, title="Standing", price_cents=4000, user_id=uuid4(), quantity=quantity
        )
        return ticket.id


async def counts(db: Database, ticket_id: UUID) -> tuple[int, int, int, int, int]:
    """(held, sold, sold cents, version, outbox rows) of a listing, after checking that its
    counts are the sum of its orders' shares."""
    async with db.transaction() as session:
        ticket = await session.get_one(Ticket, ticket_id)
        shares = (
            await session.execute(
                select(
                    func.coalesce(func.sum(OrderRef.units_held), 0),
                    func.coalesce(func.sum(OrderRef.units_sold), 0),
                    func.coalesce(func.sum(OrderRef.sold_cents), 0),
                ).where(OrderRef.ticket_id == ticket_id)
            )
        ).one()
        held, sold, cents = ticket.units_held, ticket.units_sold, ticket.sold_cents
        assert tuple(shares) == (held, sold, cents)
        pending = await session.scalar(select(func.count()).select_from(outbox_table)) or 0
        return held, sold, cents, ticket.version, pending


# --- over HTTP ------------------------------------------------------------------------


async def test_a_listing_with_a_quantity_is_general_admission_and_announced_so(
    client: httpx.AsyncClient, seller: httpx.AsyncClient, events_of: EventsOf
) -> None:
    response = await seller.post(
        "/api/tickets", json={"title": "Standing", "price": 40, "quantity": 500}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["generalAdmission"], body["status"], body["orderId"]) == (True, "for-sale", None)
    assert body["units"] == {"total": 500, "available": 500, "held": 0, "sold": 0}
    assert (await client.get(f"/api/tickets/{body['id']}")).json() == body
    [event] = await wait_until(lambda: events_of(TicketCreated))
    assert (event.data.general_admission, event.data.quantity) == (True, 500)

    # The quantity is fixed when listed: an edit ignores it, and says so in ticket:updated.
    edit = {"title": "Standing, doors at 7", "price": 45, "quantity": 3}
    edited = (await seller.put(f"/api/tickets/{body['id']}", json=edit)).json()
    assert (edited["version"], edited["units"]["total"]) == (1, 500)
    [update] = await wait_until(lambda: events_of(TicketUpdated))
    assert (update.data.general_admission, update.data.quantity) == (True, 500)


@pytest.mark.parametrize("quantity", [0, -1, 10_001, 2.5, "3", True])
async def test_a_quantity_out_of_1_to_10000_is_a_400_naming_it_and_lists_nothing(
    seller: httpx.AsyncClient, db: Database, quantity: object
) -> None:
    response = await seller.post(
        "/api/tickets", json={"title": "Standing", "price": 40, "quantity": quantity}
    )
    assert response.status_code == 400
    assert [error["field"] for error in response.json()["errors"]] == ["quantity"]
    async with db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Ticket)) == 0


def listeners_of(served: ServedApp) -> ListenerGroup:
    return served.component(ListenerGroup)


async def test_units_are_held_sold_and_returned_by_order_events_without_new_versions(
    client: httpx.AsyncClient,
    seller: httpx.AsyncClient,
    bus: EventBus,
    served: ServedApp,
    events_of: EventsOf,
) -> None:
    listing = (
        await seller.post("/api/tickets", json={"title": "Standing", "price": 40, "quantity": 5})
    ).json()
    url = f"/api/tickets/{listing['id']}"
    ticket_id = UUID(listing["id"])

    async def units_are(**expected: int) -> dict[str, object]:
        async def probe() -> dict[str, object] | None:
            body: dict[str, object] = (await client.get(url)).json()
            return body if body["units"] == {"total": 5, **expected} else None

        return await wait_until(probe)

    first, second = created(ticket_id, 3), created(ticket_id, 2, price="45")
    await bus.publish(Envelope.of(first.data))
    body = await units_are(available=2, held=3, sold=0)
    assert (body["status"], body["version"]) == ("for-sale", 0)
    assert [t["id"] for t in (await client.get("/api/tickets")).json()] == [listing["id"]]
    # Held units keep it from being withdrawn, not from being edited (orders keep their price).
    withdraw = await seller.post(f"{url}/withdraw")
    assert (withdraw.status_code, withdraw.json()) == (
        409,
        {"errors": [{"message": "Ticket is reserved"}]},
    )

    await bus.publish(Envelope.of(second.data))
    body = await units_are(available=0, held=5, sold=0)
    assert body["status"] == "reserved"
    assert (await client.get("/api/tickets")).json() == []  # nothing left to buy

    await bus.publish(Envelope.of(completed(second).data))
    await bus.publish(Envelope.of(cancelled(first, CancelReason.EXPIRED).data))
    body = await units_are(available=3, held=0, sold=2)
    assert body["status"] == "for-sale"
    sold = await seller.post(f"{url}/withdraw")
    assert (sold.status_code, sold.json()) == (409, {"errors": [{"message": "Ticket is sold"}]})
    mine = (await seller.get("/api/tickets/mine")).json()
    assert mine["totals"] == {"forSale": 3, "reserved": 0, "sold": 2, "withdrawn": 0, "revenue": 90}

    # A refund returns the units it sold.
    await bus.publish(Envelope.of(cancelled(second, CancelReason.REFUNDED).data))
    body = await units_are(available=5, held=0, sold=0)
    assert body["version"] == 0
    assert (await seller.post(f"{url}/withdraw")).json()["units"] == {
        "total": 5,
        "available": 0,
        "held": 0,
        "sold": 0,
    }
    mine = (await seller.get("/api/tickets/mine")).json()
    assert mine["totals"] == {"forSale": 0, "reserved": 0, "sold": 0, "withdrawn": 5, "revenue": 0}
    assert listeners_of(served).dead_lettered == 0
    assert await events_of(TicketUpdated) == []  # holds and sales are no versions


# --- the handlers, delivery by delivery -------------------------------------------------


async def test_a_cancel_overtaking_its_created_never_leaves_units_held(db: Database) -> None:
    ticket_id = await listed(db, 10)
    order = created(ticket_id, 4)
    await deliver(db, cancelled(order))
    await deliver(db, order)
    await deliver(db, order)  # and redelivered
    assert await counts(db, ticket_id) == (0, 0, 0, 0, 0)


async def test_completed_then_refund_returns_the_sold_units_once_and_repeats_change_nothing(
    db: Database,
) -> None:
    ticket_id = await listed(db, 10)
    order = created(ticket_id, 3)
    paid = completed(order)
    with pytest.raises(CompletedBeforeCreated):  # its created is not applied yet: wait
        await deliver(db, paid)
    first: list[OrderEvent] = [order, order, paid, paid]
    for event in first:
        await deliver(db, event)
    assert await counts(db, ticket_id) == (0, 3, 12_000, 0, 0)
    refund = cancelled(order, CancelReason.REFUNDED)
    late: list[OrderEvent] = [refund, refund, paid, order]  # they find the order settled
    for event in late:
        await deliver(db, event)
    assert await counts(db, ticket_id) == (0, 0, 0, 0, 0)


async def test_many_concurrent_order_events_for_one_listing_leave_exactly_their_sum(
    migrated_url: str,
) -> None:
    """Every event of 60 orders (created, paid, cancelled, refunded), each delivered twice,
    all at once in random order over 8 connections, each retried while it must wait: the
    listing counts exactly what the orders' final states add up to."""
    db = Database(migrated_url, pool_size=8)
    try:
        ticket_id = await listed(db, 10_000)
        rng = random.Random(14)
        events: list[OrderEvent] = []
        held = sold = 0
        for _ in range(60):
            order = created(ticket_id, rng.randint(1, 10))
            fate = rng.choice(["held", "paid", "cancelled", "refunded"])
            events.append(order)
            if fate in ("paid", "refunded"):
                events.append(completed(order))
            if fate in ("cancelled", "refunded"):
                events.append(cancelled(order))
            held += order.data.quantity if fate == "held" else 0
            sold += order.data.quantity if fate == "paid" else 0
        deliveries = events * 2
        rng.shuffle(deliveries)
        await deliver_shuffled(db, deliveries, connections=8)
        assert await counts(db, ticket_id) == (held, sold, sold * 4000, 0, 0)
    finally:
        await db.dispose()


async def test_a_withdrawal_racing_order_events_either_wins_with_nothing_counted_or_is_refused(
    migrated_url: str,
) -> None:
    """20 listings, each withdrawn by its seller while an order of 2 units reaches tickets:
    whichever takes the listing's row first decides, and the other agrees with it."""
    db = Database(migrated_url, pool_size=8)
    try:
        seller_id = uuid4()
        listings = []
        for _ in range(20):
            async with db.transaction() as session:
                ticket = await repository.insert_ticket(
                    session, title="Standing", price_cents=4000, user_id=seller_id, quantity=5
                )
                listings.append(ticket.id)

        async def withdraw(ticket_id: UUID) -> bool:
            try:
                async with db.transaction() as session:
                    await service.withdraw_ticket(session, ticket_id, seller_id)
                return True
            except TicketReserved:
                return False

        orders = [created(ticket_id, 2) for ticket_id in listings]
        outcomes = await asyncio.gather(
            *(withdraw(ticket_id) for ticket_id in listings),
            *(deliver(db, order) for order in orders),
        )
        for ticket_id, withdrawn in zip(listings, outcomes[: len(listings)], strict=True):
            held, sold, *_ = await counts(db, ticket_id)
            assert (held, sold) == ((0, 0) if withdrawn else (2, 0))
            async with db.transaction() as session:
                ticket = await session.get_one(Ticket, ticket_id)
                assert (ticket.withdrawn_at is not None) is withdrawn
    finally:
        await db.dispose()
