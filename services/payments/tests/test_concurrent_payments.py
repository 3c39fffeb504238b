"""At most one charge per order, whatever the concurrent requests (SPEC §3)."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import stripe

from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import PaymentCreated
from ticketing_common.testing import published_so_far, wait_until

from .conftest import Orders, Users, charges_of, outbox_drained, pay, payment_count

REQUESTS = 20


async def test_concurrent_payments_of_one_order_give_one_201_and_one_charge(
    client: httpx.AsyncClient,
    orders: Orders,
    users: Users,
    db: Database,
    bus: EventBus,
    stripe_client: stripe.StripeClient,
) -> None:
    order = await orders.placed()
    # The same card and other cards, as a double click or two tabs would send them.
    tokens = ["tok_visa", "pm_card_visa"]

    responses = await asyncio.gather(
        *(pay(client, users, order, tokens[index % 2]) for index in range(REQUESTS))
    )

    statuses = Counter(response.status_code for response in responses)
    assert statuses[201] == 1, [(r.status_code, r.text) for r in responses]
    assert set(statuses) == {201, 409}, statuses
    messages = {
        response.json()["errors"][0]["message"]
        for response in responses
        if response.status_code == 409
    }
    assert messages <= {
        "Order has already been paid",
        "A payment for this order is in progress; try again in a moment",
    }
    [winner] = [response.json() for response in responses if response.status_code == 201]
    charges = await charges_of(stripe_client, winner["stripeId"])
    assert [charge.status for charge in charges if charge.status == "succeeded"] == ["succeeded"]
    assert await payment_count(db) == 1
    await wait_until(lambda: outbox_drained(db))
    assert len(await published_so_far(bus, PaymentCreated)) == 1
