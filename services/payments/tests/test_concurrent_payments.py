"""At most one charge per order, whatever the concurrent requests (SPEC §3); and the
buyer whose charge went through is answered 201 whoever records it."""

from __future__ import annotations

import asyncio
from collections import Counter
from uuid import UUID

import httpx
import stripe

from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import PaymentCreated
from ticketing_common.testing import published_so_far, wait_until
from ticketing_payments import service
from ticketing_payments.models import PaymentStatus
from ticketing_payments.provider import Intent, PaymentProvider
from ticketing_payments.settings import Settings

from .conftest import Orders, Users, charges_of, outbox_drained, pay, payment_count, payment_of

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


class ReconciledBeforeRecorded(PaymentProvider):
    """The real provider, with a reconciler pass run as each confirmation returns: the
    charge exists at Stripe, and the request that made it has not recorded it yet."""

    def __init__(self, settings: Settings, database: Database) -> None:
        super().__init__(
            settings.STRIPE_SECRET_KEY.get_secret_value(), api_base=settings.STRIPE_API_BASE
        )
        self.database = database
        self.settled = 0

    async def confirm(self, intent_id: str, *, order_id: UUID, token: str) -> Intent:
        confirmed = await super().confirm(intent_id, order_id=order_id, token=token)
        self.settled += await service.reconcile(self.database, self)
        return confirmed


async def test_a_charge_the_reconciler_records_first_is_still_the_buyers_success(
    orders: Orders,
    settings: Settings,
    db: Database,
    bus: EventBus,
    stripe_client: stripe.StripeClient,
) -> None:
    """Race (request vs reconciler): the reconciler settles every pending attempt, young
    ones included, so it may record the charge between the confirmation and the
    request's own record. The order is paid, once, by this very request: the buyer gets
    the payment, not "already paid"."""
    order = await orders.placed(price="15.00")
    provider = ReconciledBeforeRecorded(settings, db)
    try:
        payment = await service.pay(
            db,
            provider,
            user_id=order.user_id,
            order_id=order.id,
            token="tok_visa",
        )
    finally:
        await provider.close()

    assert provider.settled == 1  # the reconciler did record the charge first
    assert (payment.order_id, payment.status) == (order.id, PaymentStatus.SUCCEEDED)
    stored = await payment_of(db, order.id)
    assert stored is not None
    assert (stored.id, stored.status, stored.stripe_id) == (
        payment.id,
        "succeeded",
        payment.stripe_id,
    )
    charges = await charges_of(stripe_client, payment.stripe_id)
    assert [(c.status, c.amount, c.refunded) for c in charges] == [("succeeded", 1500, False)]
    await wait_until(lambda: outbox_drained(db))
    assert [e.data.order_id for e in await published_so_far(bus, PaymentCreated)] == [order.id]
