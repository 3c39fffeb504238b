"""GET /api/orders and GET /api/orders/{id}: a user sees only their own orders (SPEC §3)."""

from __future__ import annotations

from uuid import uuid4

import httpx

from .conftest import Tickets, Users


async def test_list_shows_only_the_users_orders_newest_first_with_tickets_embedded(
    client: httpx.AsyncClient, tickets: Tickets, users: Users
) -> None:
    buyer, other = uuid4(), uuid4()
    first = await tickets.listed(title="First", price="10")
    second = await tickets.listed(title="Second", price="20.05")
    third = await tickets.listed(title="Someone else's")
    ids = []
    for ticket, user in ((first, buyer), (second, buyer), (third, other)):
        response = await client.post(
            "/api/orders", json={"ticketId": str(ticket.id)}, headers=users.headers(user)
        )
        assert response.status_code == 201
        ids.append(response.json()["id"])

    response = await client.get("/api/orders", headers=users.headers(buyer))

    assert response.status_code == 200
    listed = response.json()
    assert [order["id"] for order in listed] == [ids[1], ids[0]]
    assert listed[0]["ticket"] == {"id": str(second.id), "title": "Second", "price": 20.05}
    assert listed[1]["ticket"] == {"id": str(first.id), "title": "First", "price": 10.0}
    assert all(order["userId"] == str(buyer) for order in listed)


async def test_list_without_signing_in_is_401(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/orders")).status_code == 401


async def test_owner_reads_the_order_by_id(
    client: httpx.AsyncClient, tickets: Tickets, users: Users
) -> None:
    buyer = uuid4()
    ticket = await tickets.listed()
    created = await client.post(
        "/api/orders", json={"ticketId": str(ticket.id)}, headers=users.headers(buyer)
    )

    response = await client.get(f"/api/orders/{created.json()['id']}", headers=users.headers(buyer))

    assert response.status_code == 200
    assert response.json() == created.json()


async def test_another_users_missing_or_malformed_order_is_404(
    client: httpx.AsyncClient, tickets: Tickets, users: Users
) -> None:
    ticket = await tickets.listed()
    created = await client.post(
        "/api/orders", json={"ticketId": str(ticket.id)}, headers=users.headers(uuid4())
    )
    stranger = users.headers(uuid4())
    for path in (created.json()["id"], str(uuid4()), "not-a-uuid", "12"):
        response = await client.get(f"/api/orders/{path}", headers=stranger)
        assert response.status_code == 404, path
        assert response.json() == {"errors": [{"message": "Order not found"}]}


async def test_reading_an_order_without_signing_in_is_401(client: httpx.AsyncClient) -> None:
    assert (await client.get(f"/api/orders/{uuid4()}")).status_code == 401


async def test_docs_are_served_under_the_gateway_prefix(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/orders/docs")).status_code == 200
    spec = (await client.get("/api/orders/openapi.json")).json()
    assert "/api/orders" in spec["paths"]
