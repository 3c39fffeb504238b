"""expiration:complete cancels an unpaid order; payment:created completes it (SPEC §4)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from uuid import UUID, uuid4

import httpx

from ticketing_common import admission
from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import (
    Envelope,
    ExpirationComplete,
    OrderCancelled,
    OrderCompleted,
    OrderCreated,
    Payload,
    PaymentCreated,
    PricedTicketRef,
    TicketUpdated,
)
from ticketing_common.events.listener import ListenerGroup
from ticketing_common.testing import ServedApp, published, published_so_far, wait_until
from ticketing_orders.models import TicketReplica
from ticketing_orders.settings import Settings

from .conftest import Tickets, Users


async def _order(client: httpx.AsyncClient, tickets: Tickets, users: Users, buyer: UUID) -> UUID:
    ticket = await tickets.listed(price="42.10")
    response = await client.post(
        "/api/orders", json={"ticketId": str(ticket.id)}, headers=users.headers(buyer)
    )
    assert response.status_code == 201
    return UUID(response.json()["id"])


async def _status(client: httpx.AsyncClient, users: Users, buyer: UUID, order_id: UUID) -> str:
    response = await client.get(f"/api/orders/{order_id}", headers=users.headers(buyer))
    assert response.status_code == 200
    status: str = response.json()["status"]
    return status


async def _settled(orders: ServedApp, handled: int) -> None:
    listeners = orders.component(ListenerGroup)
    await wait_until(lambda: listeners.handled >= handled)


def _paid(order_id: UUID) -> Envelope[PaymentCreated]:
    return Envelope.of(PaymentCreated(id=uuid4(), order_id=order_id, stripe_id="pi_test"))


async def test_expiration_cancels_an_unpaid_order_and_publishes_order_cancelled(
    client: httpx.AsyncClient, tickets: Tickets, users: Users, bus: EventBus
) -> None:
    buyer = uuid4()
    order_id = await _order(client, tickets, users, buyer)

    await bus.publish(Envelope.of(ExpirationComplete(order_id=order_id)))

    [event] = await published(bus, OrderCancelled, 1)
    assert (event.data.id, event.data.version, event.data.reason) == (order_id, 1, "expired")
    order = (await client.get(f"/api/orders/{order_id}", headers=users.headers(buyer))).json()
    assert (order["status"], order["cancelReason"]) == ("cancelled", "expired")


async def test_expired_order_frees_the_ticket_for_another_buyer(
    client: httpx.AsyncClient, tickets: Tickets, users: Users, bus: EventBus
) -> None:
    buyer = uuid4()
    ticket = await tickets.listed()
    first = await client.post(
        "/api/orders", json={"ticketId": str(ticket.id)}, headers=users.headers(buyer)
    )
    await bus.publish(Envelope.of(ExpirationComplete(order_id=UUID(first.json()["id"]))))
    await published(bus, OrderCancelled, 1)

    again = await client.post(
        "/api/orders", json={"ticketId": str(ticket.id)}, headers=users.headers(uuid4())
    )

    assert again.status_code == 201


async def test_repeated_expiration_publishes_order_cancelled_once(
    client: httpx.AsyncClient, tickets: Tickets, users: Users, bus: EventBus, orders: ServedApp
) -> None:
    buyer = uuid4()
    order_id = await _order(client, tickets, users, buyer)
    handled = orders.component(ListenerGroup).handled

    # Different event ids, so the broker does not de-duplicate them: orders must.
    for _ in range(3):
        await bus.publish(Envelope.of(ExpirationComplete(order_id=order_id)))
    await _settled(orders, handled + 3)

    assert await _count(bus, OrderCancelled) == 1
    response = await client.get(f"/api/orders/{order_id}", headers=users.headers(buyer))
    assert response.json()["version"] == 1


async def test_payment_completes_the_order_issues_its_admission_and_it_never_expires(
    client: httpx.AsyncClient,
    tickets: Tickets,
    users: Users,
    bus: EventBus,
    orders: ServedApp,
    settings: Settings,
) -> None:
    buyer = uuid4()
    order_id = await _order(client, tickets, users, buyer)

    await bus.publish(_paid(order_id))
    await wait_until(lambda: _is(client, users, buyer, order_id, "complete"))
    handled = orders.component(ListenerGroup).handled
    # A second payment:created (another event id: the broker does not de-duplicate it)
    # and an expiry change nothing and publish nothing.
    await bus.publish(_paid(order_id))
    await bus.publish(Envelope.of(ExpirationComplete(order_id=order_id)))
    await _settled(orders, handled + 2)

    order = (await client.get(f"/api/orders/{order_id}", headers=users.headers(buyer))).json()
    assert (order["status"], order["version"], order["cancelReason"]) == ("complete", 0, None)
    assert order["admission"]["checkedInAt"] is None
    ref = admission.read(admission.admission_key(settings.JWT_KEY), order["admission"]["code"])
    assert ref == admission.AdmissionRef(order_id=order_id, ticket_id=UUID(order["ticket"]["id"]))
    [listed] = (await client.get("/api/orders", headers=users.headers(buyer))).json()
    assert listed["admission"] == order["admission"]
    [completed] = await published(bus, OrderCompleted, 1)
    assert completed.data == OrderCompleted(
        id=order_id,
        version=0,
        user_id=buyer,
        ticket=PricedTicketRef(
            id=UUID(order["ticket"]["id"]), price=Decimal("42.10"), general_admission=False
        ),
    )
    assert await _count(bus, OrderCompleted) == 1
    assert await _count(bus, OrderCancelled) == 0


async def test_payment_after_expiry_leaves_the_order_cancelled(
    client: httpx.AsyncClient, tickets: Tickets, users: Users, bus: EventBus, orders: ServedApp
) -> None:
    buyer = uuid4()
    order_id = await _order(client, tickets, users, buyer)
    await bus.publish(Envelope.of(ExpirationComplete(order_id=order_id)))
    await published(bus, OrderCancelled, 1)
    handled = orders.component(ListenerGroup).handled

    await bus.publish(_paid(order_id))
    await _settled(orders, handled + 1)

    order = (await client.get(f"/api/orders/{order_id}", headers=users.headers(buyer))).json()
    assert (order["status"], order["admission"]) == ("cancelled", None)
    assert await _count(bus, OrderCompleted) == 0
    assert orders.component(ListenerGroup).dead_lettered == 0


async def test_paid_order_cannot_be_cancelled_by_its_buyer(
    client: httpx.AsyncClient, tickets: Tickets, users: Users, bus: EventBus
) -> None:
    buyer = uuid4()
    order_id = await _order(client, tickets, users, buyer)
    await bus.publish(_paid(order_id))
    await wait_until(lambda: _is(client, users, buyer, order_id, "complete"))

    response = await client.delete(f"/api/orders/{order_id}", headers=users.headers(buyer))

    assert response.status_code == 409


async def test_events_for_unknown_orders_are_acked_and_change_nothing(
    bus: EventBus, orders: ServedApp
) -> None:
    handled = orders.component(ListenerGroup).handled

    await bus.publish(Envelope.of(ExpirationComplete(order_id=uuid4())))
    await bus.publish(_paid(uuid4()))
    await _settled(orders, handled + 2)

    assert orders.component(ListenerGroup).dead_lettered == 0
    assert await _count(bus, OrderCancelled) == 0


async def test_order_keeps_the_price_it_was_accepted_at_when_the_seller_edit_arrives_later(
    client: httpx.AsyncClient, tickets: Tickets, users: Users, bus: EventBus, db: Database
) -> None:
    buyer = uuid4()
    ticket = await tickets.listed(price="42.10")
    response = await client.post(
        "/api/orders", json={"ticketId": str(ticket.id)}, headers=users.headers(buyer)
    )
    order_id = response.json()["id"]
    # The seller's edit was accepted by tickets before it saw the order: it reaches
    # orders' replica only now.
    edit = TicketUpdated(
        id=ticket.id,
        version=1,
        title=ticket.title,
        price=ticket.price * 2,
        user_id=ticket.user_id,
        order_id=None,
    )
    await bus.publish(Envelope.of(edit))

    async def edited() -> bool:
        async with db.transaction() as session:
            copy = await session.get(TicketReplica, ticket.id)
            return copy is not None and copy.version == 1

    await wait_until(edited)

    order = (await client.get(f"/api/orders/{order_id}", headers=users.headers(buyer))).json()
    assert order["ticket"]["price"] == 42.10
    [created] = await published(bus, OrderCreated, 1)
    assert created.data.ticket.price == Decimal("42.10")


async def _is(
    client: httpx.AsyncClient, users: Users, buyer: UUID, order_id: UUID, status: str
) -> bool:
    return await _status(client, users, buyer, order_id) == status


async def _count(bus: EventBus, payload_type: type[Payload]) -> int:
    """How many events of a type are on the test's stream."""
    await asyncio.sleep(0.5)  # the outbox relay publishes a moment after the commit
    return len(await published_so_far(bus, payload_type))
