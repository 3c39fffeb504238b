"""ticket:withdrawn: a withdrawn ticket cannot be ordered, and every order that still
holds it (one that raced the withdrawal, even a paid one) is cancelled with reason
``withdrawn`` (docs/after-purchase.md; docs/concurrency.md, "Withdrawal and order")."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import httpx
from sqlalchemy import select

from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import (
    CancelReason,
    Envelope,
    OrderCancelled,
    OrderStatus,
    TicketCreated,
    TicketWithdrawn,
)
from ticketing_common.testing import published, published_so_far, wait_until
from ticketing_orders.models import Order

from .conftest import Purchases, Tickets, Users, replica_ticket

ROUNDS = 3
BUYERS = 12
ATTEMPTS = 500


async def _withdraw(bus: EventBus, db: Database, ticket: TicketCreated) -> None:
    """Publish the ticket's ticket:withdrawn (its next version) and wait until applied."""
    await bus.publish(Envelope.of(TicketWithdrawn(id=ticket.id, version=1, user_id=ticket.user_id)))

    async def applied() -> bool:
        replica = await replica_ticket(db, ticket.id)
        return replica is not None and replica.withdrawn

    await wait_until(applied)


async def _orders_of(db: Database, ticket_id: UUID) -> list[Order]:
    async with db.transaction() as session:
        return list(await session.scalars(select(Order).where(Order.ticket_id == ticket_id)))


async def test_a_withdrawn_ticket_cannot_be_ordered(
    client: httpx.AsyncClient, tickets: Tickets, users: Users, bus: EventBus, db: Database
) -> None:
    ticket = await tickets.listed()
    await _withdraw(bus, db, ticket)

    response = await client.post(
        "/api/orders", json={"ticketId": str(ticket.id)}, headers=users.headers(uuid4())
    )

    assert response.status_code == 409
    assert response.json()["errors"] == [
        {"message": "This ticket was withdrawn by its seller", "field": "ticketId"}
    ]


async def test_a_withdrawal_cancels_a_paid_order_of_the_ticket_and_voids_its_admission(
    client: httpx.AsyncClient, purchases: Purchases, users: Users, bus: EventBus, db: Database
) -> None:
    seller = uuid4()
    order = await purchases.paid(seller=seller)
    buyer, ticket_id = UUID(order["userId"]), UUID(order["ticket"]["id"])

    await bus.publish(Envelope.of(TicketWithdrawn(id=ticket_id, version=1, user_id=seller)))

    [event] = await published(bus, OrderCancelled, 1)
    assert (str(event.data.id), event.data.version, event.data.reason) == (
        order["id"],
        1,
        "withdrawn",
    )
    read = (await client.get(f"/api/orders/{order['id']}", headers=users.headers(buyer))).json()
    assert (read["status"], read["cancelReason"], read["admission"]) == (
        "cancelled",
        "withdrawn",
        None,
    )
    scan = await client.post(
        "/api/checkins", json={"code": order["admission"]["code"]}, headers=users.headers(seller)
    )
    assert scan.status_code == 400
    assert scan.json()["errors"][0]["message"] == "This ticket was withdrawn and does not admit"


async def test_orders_racing_a_withdrawal_never_hold_the_withdrawn_ticket(
    client: httpx.AsyncClient, tickets: Tickets, users: Users, bus: EventBus, db: Database
) -> None:
    withdrawn_orders: set[UUID] = set()
    cancelled = 0
    for _ in range(ROUNDS):
        ticket = await tickets.listed()

        async def buyer(ticket_id: UUID, churning: asyncio.Event) -> str:
            """Orders the ticket until they get it (and cancel it at once, freeing it for
            the next buyer) or until it is withdrawn: the ticket changes hands while
            the withdrawal arrives."""
            headers = users.headers(uuid4())
            for _ in range(ATTEMPTS):
                response = await client.post(
                    "/api/orders", json={"ticketId": str(ticket_id)}, headers=headers
                )
                if response.status_code == 201:
                    churning.set()
                    order_id = response.json()["id"]
                    cancel = await client.delete(f"/api/orders/{order_id}", headers=headers)
                    assert cancel.status_code == 204
                    return "reserved"
                assert response.status_code == 409, response.text
                message = response.json()["errors"][0]["message"]
                if message == "This ticket was withdrawn by its seller":
                    return "refused"
                assert message == "Ticket is already reserved"
            raise AssertionError("the withdrawal never reached this buyer")

        churning = asyncio.Event()
        buyers = [asyncio.create_task(buyer(ticket.id, churning)) for _ in range(BUYERS)]
        await churning.wait()
        await _withdraw(bus, db, ticket)
        outcomes = await asyncio.gather(*buyers)

        assert "refused" in outcomes
        # After the dust settles no order holds the withdrawn ticket: each was cancelled,
        # by its buyer or, when the withdrawal found it holding the ticket, for that.
        orders = await _orders_of(db, ticket.id)
        assert len(orders) == outcomes.count("reserved")
        assert {order.status for order in orders} == {OrderStatus.CANCELLED}
        assert {order.cancel_reason for order in orders} <= {
            CancelReason.CANCELLED,
            CancelReason.WITHDRAWN,
        }
        withdrawn_orders |= {o.id for o in orders if o.cancel_reason is CancelReason.WITHDRAWN}
        cancelled += len(orders)
    # Every cancelled order's order:cancelled was published once, with its reason.
    await published(bus, OrderCancelled, cancelled)
    await asyncio.sleep(0.5)  # give a wrongly recorded second event time to be relayed
    events = await published_so_far(bus, OrderCancelled)
    assert len(events) == cancelled
    withdrawn_events = [e.data.id for e in events if e.data.reason is CancelReason.WITHDRAWN]
    assert sorted(withdrawn_events) == sorted(withdrawn_orders)
