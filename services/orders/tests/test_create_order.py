"""POST /api/orders: reserving a ticket (SPEC §3), and the order:created event (§4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import httpx
from sqlalchemy import func, select

from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import OrderCreated, OrderStatus
from ticketing_common.events.outbox import outbox_table
from ticketing_common.testing import ServedApp, published
from ticketing_orders.models import Order

from .conftest import ServeOrders, Tickets, Users


async def test_buyer_reserves_a_listed_ticket_with_201_created_and_the_ticket_embedded(
    client: httpx.AsyncClient, tickets: Tickets, users: Users
) -> None:
    ticket = await tickets.listed(title="Concert", price="20.50")
    buyer = uuid4()
    before = datetime.now(UTC)

    response = await client.post(
        "/api/orders", json={"ticketId": str(ticket.id)}, headers=users.headers(buyer)
    )

    assert response.status_code == 201, response.text
    order = response.json()
    assert set(order) == {
        "id",
        "userId",
        "status",
        "expiresAt",
        "version",
        "ticket",
        "quantity",
        "total",
        "cancelReason",
        "admission",
    }
    assert order["userId"] == str(buyer)
    assert order["status"] == "created"
    assert (order["cancelReason"], order["admission"]) == (None, None)
    assert order["version"] == 0
    assert order["ticket"] == {"id": str(ticket.id), "title": "Concert", "price": 20.5}
    assert (order["quantity"], order["total"]) == (1, 20.5)
    expires_at = datetime.fromisoformat(order["expiresAt"])
    window = timedelta(seconds=900)
    assert before + window - timedelta(seconds=5) <= expires_at
    assert expires_at <= datetime.now(UTC) + window + timedelta(seconds=5)


async def test_expires_at_follows_the_configured_window(
    serve_orders: ServeOrders, bus: EventBus, db: Database, users: Users
) -> None:
    async with serve_orders(EXPIRATION_WINDOW_SECONDS=30) as served, served.client() as client:
        ticket = await Tickets(bus, db).listed()
        response = await client.post(
            "/api/orders", json={"ticketId": str(ticket.id)}, headers=users.headers(uuid4())
        )
    assert response.status_code == 201
    left = datetime.fromisoformat(response.json()["expiresAt"]) - datetime.now(UTC)
    assert timedelta(seconds=25) < left <= timedelta(seconds=31)


async def test_new_order_publishes_order_created_with_version_0_and_the_ticket_price(
    client: httpx.AsyncClient, tickets: Tickets, users: Users, bus: EventBus
) -> None:
    ticket = await tickets.listed(price="12.34")
    buyer = uuid4()
    response = await client.post(
        "/api/orders", json={"ticketId": str(ticket.id)}, headers=users.headers(buyer)
    )
    order = response.json()

    [event] = await published(bus, OrderCreated, 1)

    assert event.data.id == UUID(order["id"])
    assert event.data.version == 0
    assert event.data.status is OrderStatus.CREATED
    assert event.data.user_id == buyer
    assert event.data.expires_at == datetime.fromisoformat(order["expiresAt"])
    assert event.data.ticket.id == ticket.id
    assert str(event.data.ticket.price) == "12.34"


async def test_ordering_without_signing_in_is_401(
    client: httpx.AsyncClient, tickets: Tickets
) -> None:
    ticket = await tickets.listed()
    response = await client.post("/api/orders", json={"ticketId": str(ticket.id)})
    assert response.status_code == 401
    assert response.json() == {"errors": [{"message": "Not authorized"}]}


async def test_malformed_or_missing_ticket_id_is_400_naming_the_field(
    client: httpx.AsyncClient, users: Users
) -> None:
    headers = users.headers(uuid4())
    for body in ({"ticketId": "not-a-uuid"}, {"ticketId": 12}, {}):
        response = await client.post("/api/orders", json=body, headers=headers)
        assert response.status_code == 400, body
        assert [error["field"] for error in response.json()["errors"]] == ["ticketId"]


async def test_ticket_unknown_to_the_replica_is_404(
    client: httpx.AsyncClient, users: Users, orders: ServedApp
) -> None:
    response = await client.post(
        "/api/orders", json={"ticketId": str(uuid4())}, headers=users.headers(uuid4())
    )
    assert response.status_code == 404
    assert response.json()["errors"][0]["message"] == "Ticket not found"


async def test_buying_your_own_ticket_is_400(
    client: httpx.AsyncClient, tickets: Tickets, users: Users, db: Database
) -> None:
    seller = uuid4()
    ticket = await tickets.listed(seller_id=seller)
    response = await client.post(
        "/api/orders", json={"ticketId": str(ticket.id)}, headers=users.headers(seller)
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "ticketId"
    async with db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 0


async def test_second_buyer_of_reserved_ticket_gets_409_and_no_second_event(
    client: httpx.AsyncClient, tickets: Tickets, users: Users, db: Database
) -> None:
    ticket = await tickets.listed()
    first = await client.post(
        "/api/orders", json={"ticketId": str(ticket.id)}, headers=users.headers(uuid4())
    )
    assert first.status_code == 201

    second = await client.post(
        "/api/orders", json={"ticketId": str(ticket.id)}, headers=users.headers(uuid4())
    )

    assert second.status_code == 409
    assert second.json() == {
        "errors": [{"message": "Ticket is already reserved", "field": "ticketId"}]
    }
    async with db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Order)) == 1
        # The refused request rolled back: nothing of it waits in the outbox either.
        assert (await session.scalar(select(func.count()).select_from(outbox_table)) or 0) <= 1
