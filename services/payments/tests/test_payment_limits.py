"""Attempts to charge a card are limited per order and per user in Redis (throttle.py):
429 with Retry-After in the shared shape, before Stripe is asked; a declined card
counts, an answer about a payment already made never does."""

from __future__ import annotations

from uuid import uuid4

import httpx
import stripe

from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_payments.models import PaymentStatus

from .conftest import Orders, ServePayments, Users, charges_of, pay, payment_of

TOO_MANY = {"errors": [{"message": "Too many payment attempts, try again later"}]}
HOUR = 3600
# Two declined cards: a card given again is the same confirmation (its idempotency key).
DECLINED_CARDS = ("tok_chargeDeclined", "pm_card_chargeDeclined")


def _refused(response: httpx.Response) -> bool:
    return (
        response.status_code == 429
        and response.json() == TOO_MANY
        and 1 <= int(response.headers["Retry-After"]) <= HOUR
    )


async def test_attempts_on_one_order_over_its_rate_get_429_and_never_reach_stripe(
    serve_payments: ServePayments,
    bus: EventBus,
    db: Database,
    users: Users,
    stripe_client: stripe.StripeClient,
) -> None:
    async with serve_payments(PAYMENT_RATE_PER_ORDER="2/hour") as payments:
        orders = Orders(bus, db)
        order = await orders.placed(price="12.00")
        async with payments.client() as client:
            declines = [
                (await pay(client, users, order, card)).status_code for card in DECLINED_CARDS
            ]
            refused = await pay(client, users, order, "tok_visa")
            # The same buyer's other order is counted apart.
            other = await orders.placed(buyer=order.user_id, price="13.00")
            other_paid = await pay(client, users, other, "tok_visa")

    assert declines == [402, 402]  # declined cards count
    assert _refused(refused)
    payment = await payment_of(db, order.id)
    assert payment is not None
    assert payment.status == PaymentStatus.FAILED  # the refused attempt changed nothing
    charges = await charges_of(stripe_client, payment.stripe_id)
    assert [charge.status for charge in charges] == ["failed", "failed"]
    assert other_paid.status_code == 201


async def test_attempts_of_one_user_over_their_rate_get_429_and_another_user_pays(
    serve_payments: ServePayments, bus: EventBus, db: Database, users: Users
) -> None:
    buyer = uuid4()
    async with serve_payments(PAYMENT_RATE_PER_USER="2/hour") as payments:
        orders = Orders(bus, db)
        mine = [await orders.placed(buyer=buyer) for _ in range(3)]
        theirs = await orders.placed()
        async with payments.client() as client:
            statuses = [(await pay(client, users, order)).status_code for order in mine[:2]]
            refused = await pay(client, users, mine[2])
            other_user = await pay(client, users, theirs)

    assert statuses == [201, 201]
    assert _refused(refused)
    assert await payment_of(db, mine[2].id) is None  # not even an attempt recorded
    assert other_user.status_code == 201


async def test_a_retry_of_a_paid_order_is_told_already_paid_never_429(
    serve_payments: ServePayments, bus: EventBus, db: Database, users: Users
) -> None:
    """A buyer whose answer was lost (a timeout) retries: they learn the order is paid,
    however many times they ask, even with the order's one attempt used up."""
    async with serve_payments(PAYMENT_RATE_PER_ORDER="1/hour", PAYMENT_RATE_PER_USER="1/hour") as (
        payments
    ):
        order = await Orders(bus, db).placed()
        async with payments.client() as client:
            paid = await pay(client, users, order)
            retries = [await pay(client, users, order) for _ in range(3)]

    assert paid.status_code == 201
    assert [retry.status_code for retry in retries] == [409, 409, 409]
    assert {retry.json()["errors"][0]["message"] for retry in retries} == {
        "Order has already been paid"
    }


async def test_two_replicas_count_one_limit_together(
    serve_payments: ServePayments, bus: EventBus, db: Database, users: Users
) -> None:
    limits = {"PAYMENT_RATE_PER_ORDER": "2/hour"}
    async with serve_payments(**limits) as first, serve_payments(**limits) as second:
        order = await Orders(bus, db).placed()
        async with first.client() as one, second.client() as two:
            statuses = [
                (await pay(client, users, order, card)).status_code
                for client, card in zip((one, two, one), (*DECLINED_CARDS, "tok_visa"), strict=True)
            ]

    assert statuses == [402, 402, 429]
