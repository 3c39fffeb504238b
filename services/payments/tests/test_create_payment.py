"""POST /api/payments: paying for an order by card (SPEC §3), and payment:created (§4)."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID, uuid4

import httpx
import stripe

from ticketing_common.db import Database
from ticketing_common.embedded import HOST, free_port
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import PaymentCreated, PaymentDeclined
from ticketing_common.testing import published, published_so_far, wait_until
from ticketing_payments.models import PaymentStatus

from .conftest import (
    Orders,
    ServePayments,
    Users,
    charges_of,
    outbox_drained,
    pay,
    payment_count,
    payment_of,
)


async def test_paying_an_order_is_201_with_one_charge_of_its_price_and_payment_created(
    client: httpx.AsyncClient,
    orders: Orders,
    users: Users,
    db: Database,
    bus: EventBus,
    stripe_client: stripe.StripeClient,
) -> None:
    order = await orders.placed(price="20.50")

    response = await pay(client, users, order, "tok_visa")

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"id", "orderId", "stripeId"}
    assert body["orderId"] == str(order.id)
    payment = await payment_of(db, order.id)
    assert payment is not None
    assert (str(payment.id), payment.stripe_id) == (body["id"], body["stripeId"])
    assert (payment.amount_cents, payment.status) == (2050, PaymentStatus.SUCCEEDED)

    [event] = await published(bus, PaymentCreated, 1)
    assert event.data == PaymentCreated(
        id=UUID(body["id"]), order_id=order.id, stripe_id=body["stripeId"]
    )

    charges = await charges_of(stripe_client, body["stripeId"])
    assert [(charge.status, charge.amount, charge.currency) for charge in charges] == [
        ("succeeded", 2050, "usd")
    ]


async def test_paying_a_paid_order_again_is_409_and_charges_nothing_more(
    client: httpx.AsyncClient,
    orders: Orders,
    users: Users,
    db: Database,
    bus: EventBus,
    stripe_client: stripe.StripeClient,
) -> None:
    order = await orders.placed()
    first = await pay(client, users, order, "tok_visa")
    assert first.status_code == 201

    for token in ("tok_visa", "pm_card_visa"):
        again = await pay(client, users, order, token)
        assert again.status_code == 409, again.text
        assert again.json() == {"errors": [{"message": "Order has already been paid"}]}

    charges = await charges_of(stripe_client, first.json()["stripeId"])
    assert [charge.status for charge in charges] == ["succeeded"]
    assert await payment_count(db) == 1
    await wait_until(lambda: outbox_drained(db))
    assert len(await published_so_far(bus, PaymentCreated)) == 1


async def test_payment_method_ids_pay_like_card_tokens(
    client: httpx.AsyncClient, orders: Orders, users: Users, stripe_client: stripe.StripeClient
) -> None:
    order = await orders.placed(price="7")

    response = await pay(client, users, order, "pm_card_visa")

    assert response.status_code == 201, response.text
    charges = await charges_of(stripe_client, response.json()["stripeId"])
    assert [(charge.status, charge.amount) for charge in charges] == [("succeeded", 700)]


async def test_declined_card_is_402_and_payment_declined_with_the_providers_message(
    client: httpx.AsyncClient,
    orders: Orders,
    users: Users,
    db: Database,
    bus: EventBus,
    stripe_client: stripe.StripeClient,
) -> None:
    order = await orders.placed()

    for token in ("tok_chargeDeclined", "pm_card_chargeDeclined"):
        declined = await pay(client, users, order, token)
        assert declined.status_code == 402, declined.text
        assert declined.json() == {
            "errors": [{"message": "Your card was declined.", "field": "token"}]
        }
    attempt = await payment_of(db, order.id)
    assert attempt is not None  # recorded before the card was charged, then failed
    assert attempt.status == PaymentStatus.FAILED
    await wait_until(lambda: outbox_drained(db))
    assert await published_so_far(bus, PaymentCreated) == []
    # Committed although the request failed: one event per declined attempt.
    declines = await published_so_far(bus, PaymentDeclined)
    assert [(e.data.order_id, e.data.user_id, e.data.message) for e in declines] == [
        (order.id, order.user_id, "Your card was declined.")
    ] * 2
    assert len({e.data.id for e in declines}) == 2

    paid = await pay(client, users, order, "tok_visa")

    assert paid.status_code == 201, paid.text
    charges = await charges_of(stripe_client, paid.json()["stripeId"])
    assert sorted(charge.status for charge in charges) == ["failed", "failed", "succeeded"]


async def test_someone_elses_order_and_an_unknown_order_are_404(
    client: httpx.AsyncClient, orders: Orders, users: Users, db: Database
) -> None:
    order = await orders.placed()

    for order_id, user in ((order.id, uuid4()), (uuid4(), order.user_id)):
        response = await client.post(
            "/api/payments",
            json={"token": "tok_visa", "orderId": str(order_id)},
            headers=users.headers(user),
        )
        assert response.status_code == 404, response.text
        assert response.json() == {"errors": [{"message": "Order not found", "field": "orderId"}]}
    assert await payment_count(db) == 0


async def test_a_cancelled_order_is_400(
    client: httpx.AsyncClient, orders: Orders, users: Users, db: Database
) -> None:
    order = await orders.placed()
    await orders.cancel(order)

    response = await pay(client, users, order)

    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": "Order has been cancelled"}]}
    assert await payment_count(db) == 0


async def test_a_price_below_the_card_minimum_is_400_with_the_providers_reason(
    client: httpx.AsyncClient, orders: Orders, users: Users, db: Database
) -> None:
    order = await orders.placed(price="0.25")  # a valid ticket price, below Stripe's $0.50

    response = await pay(client, users, order)

    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert "at least" in error["message"]
    assert await payment_count(db) == 0


async def test_an_expired_order_is_400(
    client: httpx.AsyncClient, orders: Orders, users: Users, db: Database
) -> None:
    # Expired but not cancelled yet: expiration:complete has not reached orders.
    order = await orders.placed(expires_in=timedelta(seconds=-1))

    response = await pay(client, users, order)

    assert response.status_code == 400
    assert response.json() == {"errors": [{"message": "Order has expired"}]}
    assert await payment_count(db) == 0


async def test_paying_signed_out_is_401(client: httpx.AsyncClient, orders: Orders) -> None:
    order = await orders.placed()
    response = await client.post(
        "/api/payments", json={"token": "tok_visa", "orderId": str(order.id)}
    )
    assert response.status_code == 401
    assert response.json() == {"errors": [{"message": "Not authorized"}]}


async def test_invalid_bodies_are_400_listing_every_bad_field(
    client: httpx.AsyncClient, users: Users, db: Database
) -> None:
    headers = users.headers(uuid4())
    cases: list[tuple[object, list[str]]] = [
        ({}, ["token", "orderId"]),
        ({"token": "", "orderId": "not-a-uuid"}, ["token", "orderId"]),
        ({"token": 12, "orderId": str(uuid4())}, ["token"]),
        ({"token": "4242424242424242", "orderId": str(uuid4())}, ["token"]),
        ({"token": "tok_visa", "orderId": 7}, ["orderId"]),
        ({"token": "tok_visa"}, ["orderId"]),
    ]
    for body, fields in cases:
        response = await client.post("/api/payments", json=body, headers=headers)
        assert response.status_code == 400, body
        assert [error["field"] for error in response.json()["errors"]] == fields, body

    malformed = await client.post(
        "/api/payments",
        content=b"{not json",
        headers={**headers, "content-type": "application/json"},
    )
    assert malformed.status_code == 400
    assert await payment_count(db) == 0


async def test_an_unknown_card_token_is_400_naming_the_token(
    client: httpx.AsyncClient, orders: Orders, users: Users, db: Database
) -> None:
    order = await orders.placed()

    response = await pay(client, users, order, "tok_doesnotexist")

    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["field"] == "token"
    assert await payment_count(db) == 0


async def test_provider_unreachable_is_a_502_in_the_shared_shape_and_records_nothing(
    serve_payments: ServePayments, bus: EventBus, db: Database, users: Users
) -> None:
    closed = f"http://{HOST}:{free_port()}"  # nothing listens there
    async with (
        serve_payments(STRIPE_API_BASE=closed, STRIPE_MAX_NETWORK_RETRIES=0) as served,
        served.client() as client,
    ):
        order = await Orders(bus, db).placed()
        response = await pay(client, users, order)

    assert response.status_code == 502
    assert response.json() == {
        "errors": [{"message": "The payment provider is unavailable; please try again"}]
    }
    assert await payment_count(db) == 0
