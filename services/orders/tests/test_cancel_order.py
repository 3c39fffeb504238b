"""DELETE /api/orders/{id}: the owner cancels, the ticket is free again (SPEC §3, §4)."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import httpx
from sqlalchemy import update

from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import OrderCancelled, OrderStatus
from ticketing_common.testing import published
from ticketing_orders.models import Order

from .conftest import Tickets, Users


async def _order(client: httpx.AsyncClient, tickets: Tickets, users: Users, buyer: UUID) -> str:
    ticket = await tickets.listed()
    response = await client.post(
        "/api/orders", json={"ticketId": str(ticket.id)}, headers=users.headers(buyer)
    )
    assert response.status_code == 201
    order_id: str = response.json()["id"]
    return order_id


async def test_owner_cancels_with_204_and_the_order_is_cancelled_at_version_1(
    client: httpx.AsyncClient, tickets: Tickets, users: Users, bus: EventBus
) -> None:
    buyer = uuid4()
    order_id = await _order(client, tickets, users, buyer)

    response = await client.delete(f"/api/orders/{order_id}", headers=users.headers(buyer))

    assert response.status_code == 204
    assert response.content == b""
    order = (await client.get(f"/api/orders/{order_id}", headers=users.headers(buyer))).json()
    assert order["status"] == "cancelled"
    assert order["version"] == 1
    assert order["cancelReason"] == "cancelled"
    [event] = await published(bus, OrderCancelled, 1)
    assert str(event.data.id) == order_id
    assert event.data.version == 1
    assert event.data.reason == "cancelled"
    assert event.data.ticket.id == UUID(order["ticket"]["id"])


async def test_after_cancel_another_buyer_can_reserve_the_same_ticket(
    client: httpx.AsyncClient, tickets: Tickets, users: Users
) -> None:
    first, second = uuid4(), uuid4()
    ticket = await tickets.listed()
    order = await client.post(
        "/api/orders", json={"ticketId": str(ticket.id)}, headers=users.headers(first)
    )
    await client.delete(f"/api/orders/{order.json()['id']}", headers=users.headers(first))

    again = await client.post(
        "/api/orders", json={"ticketId": str(ticket.id)}, headers=users.headers(second)
    )

    assert again.status_code == 201
    assert again.json()["userId"] == str(second)


async def test_cancelling_a_cancelled_order_is_a_no_op_204_without_a_second_event(
    client: httpx.AsyncClient, tickets: Tickets, users: Users, bus: EventBus
) -> None:
    buyer = uuid4()
    order_id = await _order(client, tickets, users, buyer)
    # Concurrent double cancel, then one more: one state change, one event.
    responses = await asyncio.gather(
        *(client.delete(f"/api/orders/{order_id}", headers=users.headers(buyer)) for _ in range(5))
    )
    again = await client.delete(f"/api/orders/{order_id}", headers=users.headers(buyer))

    assert [r.status_code for r in [*responses, again]] == [204] * 6
    order = (await client.get(f"/api/orders/{order_id}", headers=users.headers(buyer))).json()
    assert order["version"] == 1
    # A second order:cancelled would be the second message on the subject.
    [event] = await published(bus, OrderCancelled, 1)
    assert event.data.version == 1
    await asyncio.sleep(0.5)  # give a wrongly recorded second event time to be relayed
    info = await bus.js.stream_info(bus.subjects.stream, subjects_filter=">")
    subject = bus.subjects.of(OrderCancelled.event_type)
    assert (info.state.subjects or {}).get(subject) == 1


async def test_cancelling_a_complete_order_is_409(
    client: httpx.AsyncClient, tickets: Tickets, users: Users, db: Database
) -> None:
    buyer = uuid4()
    order_id = await _order(client, tickets, users, buyer)
    async with db.transaction() as session:  # payment:created is not handled yet
        await session.execute(
            update(Order).where(Order.id == UUID(order_id)).values(status=OrderStatus.COMPLETE)
        )

    response = await client.delete(f"/api/orders/{order_id}", headers=users.headers(buyer))

    assert response.status_code == 409
    order = (await client.get(f"/api/orders/{order_id}", headers=users.headers(buyer))).json()
    assert order["status"] == "complete"


async def test_cancelling_another_users_missing_or_malformed_order_is_404(
    client: httpx.AsyncClient, tickets: Tickets, users: Users
) -> None:
    buyer = uuid4()
    order_id = await _order(client, tickets, users, buyer)
    stranger = users.headers(uuid4())
    for path in (order_id, str(uuid4()), "not-a-uuid"):
        response = await client.delete(f"/api/orders/{path}", headers=stranger)
        assert response.status_code == 404, path
    order = (await client.get(f"/api/orders/{order_id}", headers=users.headers(buyer))).json()
    assert order["status"] == "created"


async def test_cancelling_without_signing_in_is_401(client: httpx.AsyncClient) -> None:
    assert (await client.delete(f"/api/orders/{uuid4()}")).status_code == 401
