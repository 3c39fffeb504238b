"""Orders of general-admission listings: units claimed exactly once under any number of
concurrent buyers, returned exactly once by the one transition that cancels an order
(docs/general-admission.md; docs/concurrency.md, rule 21)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import func, select

from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import (
    Envelope,
    EventType,
    ExpirationComplete,
    OrderCancelled,
    OrderCompleted,
    OrderCreated,
    OrderStatus,
    PaymentCreated,
    TicketWithdrawn,
)
from ticketing_common.testing import published, published_so_far, wait_until
from ticketing_orders.models import Order, TicketUnit

from .conftest import Purchases, Tickets, Users

UNITS = 10
BUYERS = 40
RACE_ROUNDS = 2
TRANSITION_ROUNDS = 6


async def _holdings(db: Database, ticket_id: UUID) -> tuple[dict[UUID, int], dict[UUID, int]]:
    """Per holding order of the listing: its quantity, and the units it holds."""
    async with db.transaction() as session:
        holding = await session.execute(
            select(Order.id, Order.quantity).where(
                Order.ticket_id == ticket_id,
                Order.status.in_([status for status in OrderStatus if status.holds_ticket]),
            )
        )
        held = await session.execute(
            select(TicketUnit.order_id, func.count())
            .where(TicketUnit.ticket_id == ticket_id, TicketUnit.order_id.is_not(None))
            .group_by(TicketUnit.order_id)
        )
        return (
            {order_id: quantity for order_id, quantity in holding.tuples()},
            {order_id: count for order_id, count in held.tuples() if order_id is not None},
        )


async def _free_units(db: Database, ticket_id: UUID) -> int:
    async with db.transaction() as session:
        return (
            await session.scalar(
                select(func.count()).where(
                    TicketUnit.ticket_id == ticket_id, TicketUnit.order_id.is_(None)
                )
            )
            or 0
        )


async def _order(
    client: httpx.AsyncClient, users: Users, buyer: UUID, ticket_id: UUID, quantity: object
) -> httpx.Response:
    return await client.post(
        "/api/orders",
        json={"ticketId": str(ticket_id), "quantity": quantity},
        headers=users.headers(buyer),
    )


async def _drained(bus: EventBus, *event_types: EventType) -> None:
    """Wait until orders' consumers of these events have handled and acked all of them."""

    async def settled() -> bool:
        for event_type in event_types:
            info = await bus.js.consumer_info(bus.subjects.stream, f"orders-{event_type.slug}")
            if info.num_pending or info.num_ack_pending:
                return False
        return True

    await wait_until(settled)


async def test_forty_buyers_racing_for_ten_units_never_get_more_than_exist(
    client: httpx.AsyncClient, tickets: Tickets, users: Users, db: Database, bus: EventBus
) -> None:
    accepted: dict[UUID, int] = {}
    for _ in range(RACE_ROUNDS):
        listing = await tickets.listed(units=UNITS, price="40.00")
        buyers = [(uuid4(), 1 + i % 3) for i in range(BUYERS)]  # 80 units asked for 10

        responses = await asyncio.gather(
            *(_order(client, users, buyer, listing.id, quantity) for buyer, quantity in buyers)
        )

        assert Counter(r.status_code for r in responses).keys() <= {201, 409}
        won = {}
        for (buyer, quantity), response in zip(buyers, responses, strict=True):
            if response.status_code == 201:
                body = response.json()
                assert (body["userId"], body["quantity"]) == (str(buyer), quantity)
                assert body["total"] == 40.0 * quantity
                won[UUID(body["id"])] = quantity
            else:
                assert response.json()["errors"] == [
                    {"message": "Not enough tickets left", "field": "quantity"}
                ]
        holding, held = await _holdings(db, listing.id)
        # Exactly the accepted orders hold units, each exactly as many as it asked for
        # (so no unit is held twice: units are rows), never more than the listing has.
        assert holding == won
        assert held == won
        assert 0 < sum(won.values()) <= UNITS
        assert await _free_units(db, listing.id) == UNITS - sum(won.values())
        # Every refused buyer left nothing behind.
        async with db.transaction() as session:
            refused_orders = await session.scalar(
                select(func.count()).where(
                    Order.ticket_id == listing.id, Order.id.not_in(list(won))
                )
            )
        assert refused_orders == 0
        # What is left is truly free: one buyer takes it all, the next finds none.
        left = UNITS - sum(won.values())
        if left:
            last = await _order(client, users, uuid4(), listing.id, left)
            assert last.status_code == 201, last.text
            won[UUID(last.json()["id"])] = left
        sold_out = await _order(client, users, uuid4(), listing.id, 1)
        assert sold_out.status_code == 409
        accepted |= won

    events = await published(bus, OrderCreated, len(accepted))
    assert {event.data.id: event.data.quantity for event in events} == accepted
    assert all(event.data.ticket.general_admission for event in events)


@pytest.mark.parametrize(
    ("quantity", "units"),
    [(0, 5), (11, 5), (1.5, 5), ("2", 5), (None, 5), (2, None)],
    ids=["zero", "above-max", "fraction", "string", "null", "two-of-a-seat"],
)
async def test_an_invalid_quantity_is_400_on_field_quantity_and_changes_nothing(
    quantity: object,
    units: int | None,
    client: httpx.AsyncClient,
    tickets: Tickets,
    users: Users,
    db: Database,
) -> None:
    listing = await tickets.listed(units=units)

    response = await _order(client, users, uuid4(), listing.id, quantity)

    assert response.status_code == 400, response.text
    [error] = response.json()["errors"]
    assert error["field"] == "quantity"
    async with db.transaction() as session:
        assert await session.scalar(select(func.count()).where(Order.ticket_id == listing.id)) == 0
    assert await _free_units(db, listing.id) == (units or 0)


async def test_cancel_expiry_and_payment_at_once_one_wins_and_units_return_once(
    client: httpx.AsyncClient, tickets: Tickets, users: Users, db: Database, bus: EventBus
) -> None:
    outcomes: dict[UUID, OrderStatus] = {}
    for _ in range(TRANSITION_ROUNDS):
        listing = await tickets.listed(units=5)
        buyer = uuid4()
        created = await _order(client, users, buyer, listing.id, 3)
        assert created.status_code == 201, created.text
        order_id = UUID(created.json()["id"])

        # The buyer's cancel, the expiry and the payment, delivered together.
        cancel, _, _ = await asyncio.gather(
            client.delete(f"/api/orders/{order_id}", headers=users.headers(buyer)),
            bus.publish(Envelope.of(ExpirationComplete(order_id=order_id))),
            bus.publish(
                Envelope.of(PaymentCreated(id=uuid4(), order_id=order_id, stripe_id="pi_ga"))
            ),
        )
        await _drained(bus, EventType.EXPIRATION_COMPLETE, EventType.PAYMENT_CREATED)

        async with db.transaction() as session:
            order = await session.get_one(Order, order_id)
        outcomes[order_id] = order.status
        holding, held = await _holdings(db, listing.id)
        if order.status is OrderStatus.COMPLETE:
            assert cancel.status_code == 409  # a complete order cannot be cancelled
            assert (order.version, held) == (0, {order_id: 3})
            assert await _free_units(db, listing.id) == 2
        else:
            assert order.status is OrderStatus.CANCELLED
            assert cancel.status_code == 204
            assert order.version == 1  # one cancel, not two
            assert (holding, held) == ({}, {})
            assert await _free_units(db, listing.id) == 5

    cancelled = [o for o, status in outcomes.items() if status is OrderStatus.CANCELLED]
    completed = [o for o, status in outcomes.items() if status is OrderStatus.COMPLETE]
    if cancelled:
        await published(bus, OrderCancelled, len(cancelled))
    if completed:
        await published(bus, OrderCompleted, len(completed))
    # One event per order: the transition that won, never a second one.
    cancels = await published_so_far(bus, OrderCancelled)
    completions = await published_so_far(bus, OrderCompleted)
    assert sorted(e.data.id for e in cancels) == sorted(cancelled)
    assert all((e.data.quantity, e.data.ticket.general_admission) == (3, True) for e in cancels)
    assert sorted(e.data.id for e in completions) == sorted(completed)
    assert all((e.data.quantity, e.data.ticket.general_admission) == (3, True) for e in completions)


async def test_a_paid_order_of_units_admits_its_quantity_and_its_refund_returns_them(
    client: httpx.AsyncClient, purchases: Purchases, users: Users, db: Database, bus: EventBus
) -> None:
    seller, buyer = uuid4(), uuid4()
    listing = await purchases.tickets.listed(seller_id=seller, units=6, price="15.00")
    paid = await _paid(client, users, bus, buyer, listing.id, quantity=4)
    assert (paid["quantity"], paid["total"], paid["ticket"]["price"]) == (4, 60.0, 15.0)
    assert await _free_units(db, listing.id) == 2  # paid units stay sold

    refunded = await client.post(f"/api/orders/{paid['id']}/refund", headers=users.headers(buyer))
    assert refunded.status_code == 200, refunded.text
    assert await _free_units(db, listing.id) == 6

    other = await _paid(client, users, bus, uuid4(), listing.id, quantity=2)
    scanned = await client.post(
        "/api/checkins", json={"code": other["admission"]["code"]}, headers=users.headers(seller)
    )
    assert scanned.status_code == 201, scanned.text
    assert scanned.json()["admits"] == 2


async def test_a_withdrawal_cancels_every_order_holding_units_and_returns_them(
    client: httpx.AsyncClient, tickets: Tickets, users: Users, db: Database, bus: EventBus
) -> None:
    listing = await tickets.listed(units=8)
    first = await _order(client, users, uuid4(), listing.id, 3)
    second = await _order(client, users, uuid4(), listing.id, 2)
    assert (first.status_code, second.status_code) == (201, 201)

    await bus.publish(
        Envelope.of(TicketWithdrawn(id=listing.id, version=1, user_id=listing.user_id))
    )
    await _drained(bus, EventType.TICKET_WITHDRAWN)

    assert await _holdings(db, listing.id) == ({}, {})
    assert await _free_units(db, listing.id) == 8
    withdrawn = await _order(client, users, uuid4(), listing.id, 1)
    assert withdrawn.status_code == 409


async def _paid(
    client: httpx.AsyncClient,
    users: Users,
    bus: EventBus,
    buyer: UUID,
    ticket_id: UUID,
    *,
    quantity: int,
) -> dict[str, Any]:
    """A complete order of ``quantity`` units: ordered over HTTP, then paid on the bus."""
    created = await _order(client, users, buyer, ticket_id, quantity)
    assert created.status_code == 201, created.text
    order_id = created.json()["id"]
    await bus.publish(
        Envelope.of(PaymentCreated(id=uuid4(), order_id=UUID(order_id), stripe_id="pi_ga"))
    )

    async def complete() -> dict[str, Any] | None:
        response = await client.get(f"/api/orders/{order_id}", headers=users.headers(buyer))
        order: dict[str, Any] = response.json()
        return order if order["status"] == "complete" else None

    return await wait_until(complete)
