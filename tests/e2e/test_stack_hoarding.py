"""`ticketing up`, every service: one account trying to reserve every ticket on sale holds
at most the cap of open orders, and another buyer can still reserve and buy a ticket
(issue "one account holds the whole site"; docs/security.md, "Fair holds"). Through the
gateway only, with the Stripe sandbox `ticketing up` starts when no STRIPE_SECRET_KEY
is set."""

from __future__ import annotations

import importlib.util
import os
import time

import httpx
import pytest

from .conftest import EVENT_TIMEOUT, Stack, eventually, for_sale_ids, signed_up

pytestmark = pytest.mark.e2e

for _service in ("ticketing_tickets", "ticketing_orders", "ticketing_payments"):
    if importlib.util.find_spec(f"{_service}.app") is None:
        pytest.skip(f"{_service} is not installed yet", allow_module_level=True)

CAP = 4  # orders' default MAX_OPEN_ORDERS_PER_USER
LISTED = 10
CAP_MESSAGE = f"You already hold {CAP} tickets. Pay for or cancel one before reserving another."


@pytest.fixture
def stack(long_window_stack: Stack) -> Stack:
    """The stack with the default expiration window (the hoarder's orders hold their
    tickets throughout) and the order rates raised (``LONG_STACK_ENV``), so that the
    hoarder tries every ticket on sale and what stops it is the cap."""
    if os.environ.get("STRIPE_SECRET_KEY"):
        pytest.skip("the second buyer pays with the Stripe sandbox's test card")
    return long_window_stack


def _reserve(buyer: httpx.Client, ticket_id: str) -> httpx.Response:
    """POST the order; 404 only until orders learned of the ticket (an event away)."""
    deadline = time.monotonic() + EVENT_TIMEOUT
    while True:
        response = buyer.post("/api/orders", json={"ticketId": ticket_id})
        if response.status_code != 404 or time.monotonic() > deadline:
            return response
        time.sleep(0.2)


def _message(response: httpx.Response) -> str:
    message: str = response.json()["errors"][0]["message"]
    return message


def test_one_account_reserving_every_ticket_holds_the_cap_and_another_buyer_still_buys(
    stack: Stack,
) -> None:
    with signed_up(stack) as seller, signed_up(stack) as hoarder, signed_up(stack) as buyer:
        listed = []
        for number in range(LISTED):
            created = seller.post("/api/tickets", json={"title": f"Gig {number}", "price": 15})
            assert created.status_code == 201, created.text
            listed.append(created.json()["id"])

        # The hoarder finds every ticket on sale and tries to reserve each.
        on_sale = for_sale_ids(hoarder)
        assert set(listed) <= set(on_sale)
        answers = {ticket_id: _reserve(hoarder, ticket_id) for ticket_id in on_sale}

        held = [t for t, answer in answers.items() if answer.status_code == 201]
        refused = [answer for answer in answers.values() if answer.status_code != 201]
        assert len(held) == CAP, {t: a.status_code for t, a in answers.items()}
        assert {(a.status_code, _message(a)) for a in refused} == {(429, CAP_MESSAGE)}
        assert all(1 <= int(a.headers["retry-after"]) <= 900 for a in refused)
        mine = hoarder.get("/api/orders").json()
        assert sorted(order["ticket"]["id"] for order in mine) == sorted(held)

        # Everything the hoarder does not hold stays on sale (tickets locks only the held).
        eventually(
            "tickets never locked the hoarder's tickets",
            lambda: seller.get("/api/tickets?limit=100"),
            lambda response: not {t["id"] for t in response.json()} & set(held),
        )
        free = sorted(set(for_sale_ids(buyer)) & set(listed))
        assert len(free) == LISTED - CAP

        # Another buyer reserves one of them and pays for it.
        ordered = _reserve(buyer, free[0])
        assert ordered.status_code == 201, ordered.text
        order_id = ordered.json()["id"]
        paid = eventually(
            "payments never learned of the order",
            lambda: buyer.post("/api/payments", json={"token": "tok_visa", "orderId": order_id}),
            lambda response: response.status_code != 404,
        )
        assert paid.status_code == 201, paid.text
        eventually(
            "orders never completed the paid order",
            lambda: buyer.get(f"/api/orders/{order_id}"),
            lambda response: response.json()["status"] == "complete",
        )

        # Cancelling a hold frees a place under the cap, but not the same ticket at once.
        given_up = next(order for order in mine if order["ticket"]["id"] == held[0])
        assert hoarder.delete(f"/api/orders/{given_up['id']}").status_code == 204
        again = hoarder.post("/api/orders", json={"ticketId": held[0]})
        assert again.status_code == 429, again.text
        assert "cancelled or expired a moment ago" in _message(again)
        other = hoarder.post("/api/orders", json={"ticketId": free[1]})
        assert other.status_code == 201, other.text
        assert hoarder.post("/api/orders", json={"ticketId": free[2]}).status_code == 429
