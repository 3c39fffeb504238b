"""GET /api/tickets/mine: the seller's listings, newest first, each with its status, and the
totals of each status and of the sold prices."""

from __future__ import annotations

from uuid import UUID, uuid4

import httpx

from ticketing_common.db import Database
from ticketing_tickets import repository

from .conftest import NewTicket


async def test_my_listings_show_every_status_newest_first_with_totals(
    client: httpx.AsyncClient,
    new_ticket: NewTicket,
    seller: httpx.AsyncClient,
    stranger: httpx.AsyncClient,
    seller_id: UUID,
    db: Database,
) -> None:
    empty = await seller.get("/api/tickets/mine")
    assert empty.json() == {
        "listings": [],
        "totals": {"forSale": 0, "reserved": 0, "sold": 0, "withdrawn": 0, "revenue": 0},
    }
    created = [
        await new_ticket(title=title, price=price)
        for title, price in [
            ("Free", 5),
            ("Held", 7.25),
            ("Sold A", 20.5),
            ("Sold B", 10.25),
            ("Gone", 99),
        ]
    ]
    free, held, sold_a, sold_b, gone = (UUID(str(ticket["id"])) for ticket in created)
    await stranger.post("/api/tickets", json={"title": "Not mine", "price": 1})
    async with db.transaction() as session:
        assert await repository.reserve(session, held, uuid4())
        for ticket_id in (sold_a, sold_b):
            order_id = uuid4()
            assert await repository.reserve(session, ticket_id, order_id)
            assert await repository.mark_sold(session, ticket_id, order_id)
        assert await repository.withdraw(session, gone, seller_id)

    response = await seller.get("/api/tickets/mine")
    assert response.status_code == 200
    body = response.json()
    assert [(t["title"], t["status"]) for t in body["listings"]] == [
        ("Gone", "withdrawn"),
        ("Sold B", "sold"),
        ("Sold A", "sold"),
        ("Held", "reserved"),
        ("Free", "for-sale"),
    ]
    assert {t["id"] for t in body["listings"]} == {
        str(i) for i in (free, held, sold_a, sold_b, gone)
    }
    assert body["totals"] == {
        "forSale": 1,
        "reserved": 1,
        "sold": 2,
        "withdrawn": 1,
        "revenue": 30.75,
    }
    # Each listing is the ticket as GET /{id} shows it to its seller.
    assert body["listings"][-1] == (await seller.get(f"/api/tickets/{free}")).json()


async def test_my_listings_need_a_signed_in_user(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/tickets/mine")
    assert response.status_code == 401
