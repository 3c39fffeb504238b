"""`ticketing up` with every service: a paid order completes and keeps its ticket; an
unpaid one expires and the ticket is for sale again (SPEC §3 payments, §4 flows, §5).
Through the gateway only, with a short expiration window and the Stripe sandbox that
`ticketing up` starts when no STRIPE_SECRET_KEY is set."""

from __future__ import annotations

import importlib.util
import time

import httpx
import pytest

from .conftest import (
    EVENT_TIMEOUT,
    SHORT_WINDOW_SECONDS,
    Stack,
    eventually,
    for_sale_ids,
    order_when_known,
    signed_up,
)

pytestmark = pytest.mark.e2e

for _service in ("ticketing_payments", "ticketing_expiration"):
    if importlib.util.find_spec(f"{_service}.app") is None:
        pytest.skip(f"{_service} is not installed yet", allow_module_level=True)

WINDOW_SECONDS = SHORT_WINDOW_SECONDS


@pytest.fixture
def stack(short_window_stack: Stack) -> Stack:
    """The stack with a short expiration window, shared with other modules."""
    return short_window_stack


def _listed(stack: Stack, seller: httpx.Client, price: float = 31.5) -> str:
    created = seller.post("/api/tickets", json={"title": "Quartet", "price": price})
    assert created.status_code == 201, created.text
    ticket_id: str = created.json()["id"]
    return ticket_id


def _reserved(seller: httpx.Client, buyer: httpx.Client, ticket_id: str) -> str:
    ordered = order_when_known(buyer, ticket_id)
    assert ordered.status_code == 201, ordered.text
    order_id: str = ordered.json()["id"]
    eventually(
        "tickets never marked the ticket reserved",
        lambda: seller.get(f"/api/tickets/{ticket_id}"),
        lambda response: response.json().get("orderId") == order_id,
    )
    return order_id


def _pay(buyer: httpx.Client, order_id: str, token: str) -> httpx.Response:
    """Pay once payments knows of the order (it learns from order:created: 404 before)."""
    return eventually(
        "payments never learned of the order",
        lambda: buyer.post("/api/payments", json={"token": token, "orderId": order_id}),
        lambda response: response.status_code != 404,
    )


def test_paid_order_completes_keeps_its_ticket_and_never_expires(stack: Stack) -> None:
    with signed_up(stack) as seller, signed_up(stack) as buyer, signed_up(stack) as other:
        ticket_id = _listed(stack, seller)
        assert ticket_id in for_sale_ids(buyer)
        order_id = _reserved(seller, buyer, ticket_id)

        declined = _pay(buyer, order_id, "tok_chargeDeclined")
        assert declined.status_code == 402, declined.text
        assert declined.json()["errors"][0]["message"] == "Your card was declined."

        paid = buyer.post("/api/payments", json={"token": "tok_visa", "orderId": order_id})
        assert paid.status_code == 201, paid.text
        payment = paid.json()
        assert payment["orderId"] == order_id
        assert payment["stripeId"].startswith("pi_")

        complete = eventually(
            "orders never completed the paid order",
            lambda: buyer.get(f"/api/orders/{order_id}"),
            lambda response: response.json()["status"] == "complete",
        )
        assert complete.json()["ticket"]["price"] == 31.5

        again = buyer.post("/api/payments", json={"token": "tok_visa", "orderId": order_id})
        assert again.status_code == 409, again.text
        assert (
            other.post("/api/payments", json={"token": "tok_visa", "orderId": order_id}).status_code
            == 404
        )

        # Past the window: a paid order is never expired, its ticket stays sold.
        time.sleep(WINDOW_SECONDS + 3)
        assert buyer.get(f"/api/orders/{order_id}").json()["status"] == "complete"
        assert seller.get(f"/api/tickets/{ticket_id}").json()["orderId"] == order_id
        assert ticket_id not in for_sale_ids(other)
        refused = other.post("/api/orders", json={"ticketId": ticket_id})
        assert refused.status_code == 409, refused.text


def test_unpaid_order_expires_and_the_ticket_is_for_sale_again(stack: Stack) -> None:
    with signed_up(stack) as seller, signed_up(stack) as buyer, signed_up(stack) as second:
        ticket_id = _listed(stack, seller)
        order_id = _reserved(seller, buyer, ticket_id)
        assert ticket_id not in for_sale_ids(second)

        deadline = time.monotonic() + WINDOW_SECONDS + EVENT_TIMEOUT
        while buyer.get(f"/api/orders/{order_id}").json()["status"] != "cancelled":
            assert time.monotonic() < deadline, "the unpaid order never expired"
            time.sleep(0.5)

        eventually(
            "tickets never released the expired order's ticket",
            lambda: seller.get(f"/api/tickets/{ticket_id}"),
            lambda response: response.json()["orderId"] is None,
        )
        assert ticket_id in for_sale_ids(second)

        late = buyer.post("/api/payments", json={"token": "tok_visa", "orderId": order_id})
        assert late.status_code == 400, late.text

        again = second.post("/api/orders", json={"ticketId": ticket_id})
        assert again.status_code == 201, again.text
