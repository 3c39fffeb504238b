"""`ticketing up` with auth, tickets and orders: a reserved ticket is locked for everyone
until its order is cancelled, then it is for sale again (SPEC §2 flow, §3 routes). Only
through the gateway, one cookie jar per user; every wait for an event is bounded."""

from __future__ import annotations

import importlib.util
from typing import Any

import httpx
import pytest

from .conftest import Stack, eventually, for_sale_ids, order_when_known, signed_up

pytestmark = pytest.mark.e2e

for _service in ("ticketing_auth", "ticketing_tickets", "ticketing_orders"):
    if importlib.util.find_spec(_service) is None:
        pytest.skip(f"{_service} is not installed yet", allow_module_level=True)


@pytest.fixture
def stack(long_window_stack: Stack) -> Stack:
    """The stack with the default expiration window, shared with other modules."""
    return long_window_stack


def _ticket(client: httpx.Client, ticket_id: str) -> dict[str, Any]:
    response = client.get(f"/api/tickets/{ticket_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_reserved_ticket_is_locked_until_its_order_is_cancelled(stack: Stack) -> None:
    with signed_up(stack) as seller, signed_up(stack) as buyer, signed_up(stack) as second_buyer:
        created = seller.post("/api/tickets", json={"title": "Concert", "price": 20.5})
        assert created.status_code == 201, created.text
        ticket = created.json()
        ticket_id = ticket["id"]
        assert ticket["orderId"] is None
        assert ticket["version"] == 0
        assert ticket_id in for_sale_ids(buyer)

        # The buyer reserves it.
        ordered = order_when_known(buyer, ticket_id)
        assert ordered.status_code == 201, ordered.text
        order = ordered.json()
        order_id = order["id"]
        assert order["status"] == "created"
        assert order["ticket"] == {"id": ticket_id, "title": "Concert", "price": 20.5}

        # Locked: tickets learns of the order, takes it off sale, refuses edits.
        locked = eventually(
            "tickets never marked the ticket reserved",
            lambda: seller.get(f"/api/tickets/{ticket_id}"),
            lambda response: response.json().get("orderId") == order_id,
        )
        assert locked.json()["version"] == 1
        assert ticket_id not in for_sale_ids(buyer)
        edit = seller.put(f"/api/tickets/{ticket_id}", json={"title": "Concert", "price": 25})
        assert edit.status_code == 409, edit.text
        assert edit.json()["errors"][0]["message"] == "Ticket is reserved"
        assert _ticket(seller, ticket_id)["price"] == 20.5

        refused = second_buyer.post("/api/orders", json={"ticketId": ticket_id})
        assert refused.status_code == 409, refused.text
        assert refused.json()["errors"][0]["message"] == "Ticket is already reserved"

        # The buyer cancels: the ticket is for sale again.
        cancelled = buyer.delete(f"/api/orders/{order_id}")
        assert cancelled.status_code == 204, cancelled.text
        freed = eventually(
            "tickets never released the ticket",
            lambda: seller.get(f"/api/tickets/{ticket_id}"),
            lambda response: response.status_code == 200 and response.json()["orderId"] is None,
        )
        assert freed.json()["version"] == 2
        assert ticket_id in for_sale_ids(second_buyer)

        mine = buyer.get("/api/orders")
        assert mine.status_code == 200, mine.text
        assert [(o["id"], o["status"], o["ticket"]["id"]) for o in mine.json()] == [
            (order_id, "cancelled", ticket_id)
        ]
        assert buyer.get(f"/api/orders/{order_id}").json()["status"] == "cancelled"

        # The second buyer may now reserve it: orders judges by its own (cancelled) order.
        second = second_buyer.post("/api/orders", json={"ticketId": ticket_id})
        assert second.status_code == 201, second.text
        assert second.json()["status"] == "created"
        assert second.json()["ticket"]["id"] == ticket_id
        assert [o["id"] for o in second_buyer.get("/api/orders").json()] == [second.json()["id"]]
        relocked = eventually(
            "tickets never marked the ticket reserved by the second order",
            lambda: seller.get(f"/api/tickets/{ticket_id}"),
            lambda response: response.json().get("orderId") == second.json()["id"],
        )
        assert relocked.json()["version"] == 3
