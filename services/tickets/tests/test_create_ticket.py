"""POST /api/tickets: signed in, valid title and price, 201 with version 0, ticket:created."""

from __future__ import annotations

from uuid import UUID

import httpx
import pytest
from sqlalchemy import func, select

from ticketing_common.db import Database
from ticketing_common.events.contracts import TicketCreated
from ticketing_common.testing import wait_until
from ticketing_tickets.models import Ticket

from .conftest import EventsOf, NewTicket, price


async def test_signed_in_user_creates_ticket_for_sale_with_version_0_and_no_order(
    client: httpx.AsyncClient, seller: httpx.AsyncClient, seller_id: UUID
) -> None:
    response = await seller.post("/api/tickets", json={"title": "  Concert  ", "price": 20.5})
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {
        "id",
        "title",
        "price",
        "userId",
        "version",
        "orderId",
        "status",
        "generalAdmission",
        "units",
    }
    assert body["generalAdmission"] is False
    assert body["units"] == {"total": 1, "available": 1, "held": 0, "sold": 0}
    assert body["title"] == "Concert"  # trimmed
    assert body["price"] == 20.5
    assert body["userId"] == str(seller_id)
    assert body["version"] == 0
    assert body["orderId"] is None
    assert body["status"] == "for-sale"
    fetched = await client.get(f"/api/tickets/{body['id']}")
    assert fetched.json() == body


async def test_creating_a_ticket_needs_a_signed_in_user(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/tickets", json={"title": "Concert", "price": 10})
    assert response.status_code == 401
    assert response.json() == {"errors": [{"message": "Not authorized"}]}


async def test_creating_a_ticket_publishes_ticket_created_with_version_0(
    new_ticket: NewTicket, events_of: EventsOf, seller_id: UUID
) -> None:
    ticket = await new_ticket(title="Opera", price="99.99")
    events = await wait_until(lambda: events_of(TicketCreated))
    assert len(events) == 1
    event = events[0].data
    assert str(event.id) == ticket["id"]
    assert event.version == 0
    assert event.title == "Opera"
    assert event.price == price("99.99")
    assert event.user_id == seller_id


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"price": 10}, "title"),
        ({"title": "", "price": 10}, "title"),
        ({"title": "   ", "price": 10}, "title"),
        ({"title": "x" * 201, "price": 10}, "title"),
        ({"title": None, "price": 10}, "title"),
        ({"title": 12, "price": 10}, "title"),
        ({"title": "Concert"}, "price"),
        ({"title": "Concert", "price": 0}, "price"),
        ({"title": "Concert", "price": -5}, "price"),
        ({"title": "Concert", "price": 1_000_000.01}, "price"),
        ({"title": "Concert", "price": 10.001}, "price"),
        ({"title": "Concert", "price": "ten"}, "price"),
        ({"title": "Concert", "price": None}, "price"),
    ],
)
async def test_invalid_title_or_price_is_a_400_naming_the_field(
    client: httpx.AsyncClient, seller: httpx.AsyncClient, body: dict[str, object], field: str
) -> None:
    response = await seller.post("/api/tickets", json=body)
    assert response.status_code == 400
    assert [error.get("field") for error in response.json()["errors"]] == [field]


async def test_title_that_is_not_valid_unicode_is_a_400(seller: httpx.AsyncClient) -> None:
    # A lone surrogate is valid JSON but no text: it must not reach the database driver.
    response = await seller.post(
        "/api/tickets",
        content=b'{"title": "\\ud800", "price": 10}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert [error.get("field") for error in response.json()["errors"]] == ["title"]


CONTROL_CHARACTERS = {
    "nul": "Con\x00cert",
    "only-nul": "\x00",
    "bell": "Concert\x07",
    "escape": "\x1b[31mConcert",
    "del": "Con\x7fcert",
    "c1-next-line": "Con\x85cert",
    "tab": "Con\tcert",
    "trailing-newline": "Concert\n",
    "line-separator": "Con\u2028cert",
}


@pytest.mark.parametrize("title", CONTROL_CHARACTERS.values(), ids=CONTROL_CHARACTERS.keys())
async def test_title_with_a_control_character_is_a_400_and_creates_nothing(
    seller: httpx.AsyncClient, db: Database, events_of: EventsOf, title: str
) -> None:
    response = await seller.post("/api/tickets", json={"title": title, "price": 10})
    assert response.status_code == 400
    assert response.json() == {
        "errors": [{"message": "Must not contain control characters", "field": "title"}]
    }
    async with db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(Ticket)) == 0
    # Events leave in order: once a later ticket's event is out, none came before it.
    await seller.post("/api/tickets", json={"title": "Concert", "price": 10})
    [created] = await wait_until(lambda: events_of(TicketCreated))
    assert created.data.title == "Concert"


async def test_title_in_any_script_with_symbols_is_accepted(seller: httpx.AsyncClient) -> None:
    title = "Été — 東京ドーム · مسرح 🎟 «Ω»"
    response = await seller.post("/api/tickets", json={"title": title, "price": 10})
    assert response.status_code == 201
    assert response.json()["title"] == title


async def test_every_invalid_field_is_listed(
    client: httpx.AsyncClient, seller: httpx.AsyncClient
) -> None:
    response = await seller.post("/api/tickets", json={"title": "", "price": 0})
    assert response.status_code == 400
    assert {error["field"] for error in response.json()["errors"]} == {"title", "price"}


async def test_title_of_200_characters_and_price_of_1_000_000_are_accepted(
    client: httpx.AsyncClient, seller: httpx.AsyncClient
) -> None:
    response = await seller.post("/api/tickets", json={"title": "x" * 200, "price": 1_000_000})
    assert response.status_code == 201
    assert response.json()["price"] == 1_000_000


async def test_malformed_json_body_is_a_400(
    client: httpx.AsyncClient, seller: httpx.AsyncClient
) -> None:
    response = await seller.post(
        "/api/tickets", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
