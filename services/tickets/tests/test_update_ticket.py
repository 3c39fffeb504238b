"""PUT /api/tickets/{id}: seller only, 404, 400, 409 while reserved; version +1, ticket:updated."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import httpx
import pytest

from ticketing_common.db import Database
from ticketing_common.events.contracts import TicketUpdated
from ticketing_common.testing import wait_until
from ticketing_tickets import repository

from .conftest import EventsOf, NewTicket, price

EDIT = {"title": "Concert, front row", "price": 35.25}


async def test_seller_edits_title_and_price_and_version_goes_up_by_one(
    client: httpx.AsyncClient, new_ticket: NewTicket, seller: httpx.AsyncClient
) -> None:
    ticket = await new_ticket()
    response = await seller.put(f"/api/tickets/{ticket['id']}", json=EDIT)
    assert response.status_code == 200
    body = response.json()
    assert body == {**ticket, "title": "Concert, front row", "price": 35.25, "version": 1}
    assert (await client.get(f"/api/tickets/{ticket['id']}")).json() == body


async def test_edit_publishes_ticket_updated_with_the_new_version(
    client: httpx.AsyncClient, new_ticket: NewTicket, seller: httpx.AsyncClient, events_of: EventsOf
) -> None:
    ticket = await new_ticket()
    await seller.put(f"/api/tickets/{ticket['id']}", json=EDIT)
    events = await wait_until(lambda: events_of(TicketUpdated))
    assert len(events) == 1
    event = events[0].data
    assert str(event.id) == ticket["id"]
    assert event.version == 1
    assert event.title == EDIT["title"]
    assert event.price == price(EDIT["price"])
    assert event.order_id is None


async def test_editing_needs_a_signed_in_user(
    client: httpx.AsyncClient, new_ticket: NewTicket
) -> None:
    ticket = await new_ticket()
    response = await client.put(f"/api/tickets/{ticket['id']}", json=EDIT)
    assert response.status_code == 401


async def test_only_the_seller_may_edit_a_ticket_others_get_403(
    client: httpx.AsyncClient, new_ticket: NewTicket, stranger: httpx.AsyncClient
) -> None:
    ticket = await new_ticket()
    response = await stranger.put(f"/api/tickets/{ticket['id']}", json=EDIT)
    assert response.status_code == 403
    assert (await client.get(f"/api/tickets/{ticket['id']}")).json() == ticket


async def test_editing_an_unknown_ticket_is_a_404(
    client: httpx.AsyncClient, seller: httpx.AsyncClient
) -> None:
    response = await seller.put(f"/api/tickets/{uuid4()}", json=EDIT)
    assert response.status_code == 404


async def test_editing_a_malformed_ticket_id_is_a_404(
    client: httpx.AsyncClient, seller: httpx.AsyncClient
) -> None:
    response = await seller.put("/api/tickets/not-a-uuid", json=EDIT)
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": "", "price": 10}, "title"),
        ({"title": "x" * 201, "price": 10}, "title"),
        ({"title": "Con\x00cert", "price": 10}, "title"),
        ({"title": "Concert\r", "price": 10}, "title"),
        ({"price": 10}, "title"),
        ({"title": "Concert", "price": 0}, "price"),
        ({"title": "Concert", "price": 1_000_001}, "price"),
        ({"title": "Concert", "price": 1.234}, "price"),
        ({"title": "Concert"}, "price"),
    ],
)
async def test_invalid_edit_is_a_400_naming_the_field_and_changes_nothing(
    client: httpx.AsyncClient,
    new_ticket: NewTicket,
    seller: httpx.AsyncClient,
    body: dict[str, object],
    field: str,
) -> None:
    ticket = await new_ticket()
    response = await seller.put(f"/api/tickets/{ticket['id']}", json=body)
    assert response.status_code == 400
    assert [error.get("field") for error in response.json()["errors"]] == [field]
    assert (await client.get(f"/api/tickets/{ticket['id']}")).json() == ticket


async def test_editing_a_reserved_ticket_is_a_409_and_changes_nothing(
    client: httpx.AsyncClient, new_ticket: NewTicket, seller: httpx.AsyncClient, db: Database
) -> None:
    ticket = await new_ticket()
    async with db.transaction() as session:
        await repository.reserve(session, UUID(str(ticket["id"])), uuid4())
    response = await seller.put(f"/api/tickets/{ticket['id']}", json=EDIT)
    assert response.status_code == 409
    assert response.json() == {"errors": [{"message": "Ticket is reserved"}]}
    after = (await client.get(f"/api/tickets/{ticket['id']}")).json()
    assert (after["title"], after["price"], after["version"]) == ("Concert", 20.5, 1)


async def test_a_stranger_editing_a_reserved_ticket_gets_403_not_409(
    client: httpx.AsyncClient, new_ticket: NewTicket, stranger: httpx.AsyncClient, db: Database
) -> None:
    ticket = await new_ticket()
    async with db.transaction() as session:
        await repository.reserve(session, UUID(str(ticket["id"])), uuid4())
    response = await stranger.put(f"/api/tickets/{ticket['id']}", json=EDIT)
    assert response.status_code == 403


async def test_edit_racing_a_reservation_in_flight_waits_for_it_and_gets_409(
    client: httpx.AsyncClient, new_ticket: NewTicket, seller: httpx.AsyncClient, db: Database
) -> None:
    """The race the conditional UPDATE defends against: order:created reserving the ticket
    while an edit is being made. The edit must not slip in before the reservation commits."""
    ticket = await new_ticket()
    async with db.transaction() as session:
        # A reservation whose transaction has not committed yet holds the row lock.
        assert await repository.reserve(session, UUID(str(ticket["id"])), uuid4())
        edit = asyncio.create_task(seller.put(f"/api/tickets/{ticket['id']}", json=EDIT))
        await asyncio.sleep(0.5)
        assert not edit.done()  # blocked on the row, not decided on a stale read
    response = await edit
    assert response.status_code == 409
    after = (await client.get(f"/api/tickets/{ticket['id']}")).json()
    assert (after["title"], after["version"]) == ("Concert", 1)
