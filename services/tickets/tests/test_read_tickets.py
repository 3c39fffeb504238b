"""GET /api/tickets and GET /api/tickets/{id}: for-sale list, newest first, paged; 404s."""

from __future__ import annotations

from uuid import UUID, uuid4

import httpx
import pytest

from ticketing_common.db import Database
from ticketing_tickets import repository

from .conftest import NewTicket


async def test_list_shows_tickets_for_sale_newest_first(
    client: httpx.AsyncClient, new_ticket: NewTicket
) -> None:
    first = await new_ticket(title="First")
    second = await new_ticket(title="Second")
    response = await client.get("/api/tickets")
    assert response.status_code == 200
    assert [ticket["id"] for ticket in response.json()] == [second["id"], first["id"]]


async def test_reserved_tickets_are_absent_from_the_list_but_readable_by_id(
    client: httpx.AsyncClient, new_ticket: NewTicket, db: Database
) -> None:
    free = await new_ticket(title="Free")
    held = await new_ticket(title="Held")
    order_id = uuid4()
    async with db.transaction() as session:
        assert await repository.reserve(session, UUID(str(held["id"])), order_id)
    listed = await client.get("/api/tickets")
    assert [ticket["id"] for ticket in listed.json()] == [free["id"]]
    fetched = await client.get(f"/api/tickets/{held['id']}")
    assert fetched.status_code == 200
    assert fetched.json()["orderId"] == str(order_id)


async def test_list_is_paged_by_limit_and_offset_with_a_next_link(
    client: httpx.AsyncClient, new_ticket: NewTicket
) -> None:
    created = [await new_ticket(title=f"T{index}") for index in range(5)]
    newest_first = [ticket["id"] for ticket in reversed(created)]

    page = await client.get("/api/tickets", params={"limit": 2})
    assert [ticket["id"] for ticket in page.json()] == newest_first[:2]
    assert 'rel="next"' in page.headers["link"]
    assert "offset=2" in page.headers["link"]

    page = await client.get("/api/tickets", params={"limit": 2, "offset": 4})
    assert [ticket["id"] for ticket in page.json()] == newest_first[4:]
    assert "link" not in page.headers


async def test_list_pages_hold_20_tickets_by_default(
    client: httpx.AsyncClient, new_ticket: NewTicket
) -> None:
    for index in range(21):
        await new_ticket(title=f"T{index}")
    assert len((await client.get("/api/tickets")).json()) == 20


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": "x"}, "offset"),
        ({"offset": 10**20}, "offset"),
    ],
)
async def test_invalid_paging_parameters_are_a_400_naming_the_parameter(
    client: httpx.AsyncClient, params: dict[str, object], field: str
) -> None:
    response = await client.get("/api/tickets", params=params)  # type: ignore[arg-type]
    assert response.status_code == 400
    assert [error.get("field") for error in response.json()["errors"]] == [field]


async def test_unknown_ticket_is_a_404(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/api/tickets/{uuid4()}")
    assert response.status_code == 404
    assert response.json() == {"errors": [{"message": "Ticket not found"}]}


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "123", "%00", "' OR 1=1"])
async def test_malformed_ticket_id_in_the_path_is_a_404(
    client: httpx.AsyncClient, bad_id: str
) -> None:
    response = await client.get(f"/api/tickets/{bad_id}")
    assert response.status_code == 404
