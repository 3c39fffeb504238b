"""At most one charge per order, whatever the concurrent requests (SPEC §3); and the
buyer whose charge went through is answered 201 whoever records it."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from uuid import UUID

import stripe

from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import OrderCreated, PaymentCreated
from ticketing_common.testing import published_so_far, wait_until
from ticketing_payments import service
from ticketing_payments.errors import OrderAlreadyPaid
from ticketing_payments.models import Payment, PaymentStatus
from ticketing_payments.provider import Intent, PaymentProvider
from ticketing_payments.settings import Settings

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

REQUESTS = 20


async def test_concurrent_payments_of_one_order_give_one_201_and_one_charge(
    serve_payments: ServePayments,
    bus: EventBus,
    db: Database,
    users: Users,
    stripe_client: stripe.StripeClient,
) -> None:
    # The attempts limit is raised: all the requests pass it at once, and the race under
    # test is the one for the order's lock.
    async with serve_payments(PAYMENT_RATE_PER_ORDER=f"{REQUESTS}/hour") as payments:
        order = await Orders(bus, db).placed()
        # The same card and other cards, as a double click or two tabs would send them.
        tokens = ["tok_visa", "pm_card_visa"]
        async with payments.client() as client:
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


class SettledBeforeRecorded(PaymentProvider):
    """The real provider, running ``meanwhile`` as each confirmation returns: the charge
    exists at Stripe, and the request that made it has not recorded it yet."""

    def __init__(
        self, settings: Settings, meanwhile: Callable[[PaymentProvider], Awaitable[object]]
    ) -> None:
        super().__init__(
            settings.STRIPE_SECRET_KEY.get_secret_value(), api_base=settings.STRIPE_API_BASE
        )
        self.meanwhile = meanwhile
        self.outcomes: list[object] = []

    async def confirm(self, intent_id: str, *, order_id: UUID, token: str) -> Intent:
        confirmed = await super().confirm(intent_id, order_id=order_id, token=token)
        self.outcomes.append(await self.meanwhile(self))
        return confirmed


async def _paid_through(
    provider: SettledBeforeRecorded, db: Database, order: OrderCreated
) -> Payment:
    try:
        return await service.pay(
            db, provider, user_id=order.user_id, order_id=order.id, token="tok_visa"
        )
    finally:
        await provider.close()


async def _charged_once(
    db: Database, bus: EventBus, stripe_client: stripe.StripeClient, payment: Payment
) -> None:
    """The payment is the order's one recorded, kept charge, published once."""
    assert payment.status == PaymentStatus.SUCCEEDED
    stored = await payment_of(db, payment.order_id)
    assert stored is not None
    assert (stored.id, stored.status, stored.stripe_id) == (
        payment.id,
        PaymentStatus.SUCCEEDED,
        payment.stripe_id,
    )
    charges = await charges_of(stripe_client, payment.stripe_id)
    assert [(c.status, c.amount, c.refunded) for c in charges] == [
        ("succeeded", payment.amount_cents, False)
    ]
    await wait_until(lambda: outbox_drained(db))
    created = [event.data for event in await published_so_far(bus, PaymentCreated)]
    assert created == [
        PaymentCreated(id=payment.id, order_id=payment.order_id, stripe_id=payment.stripe_id)
    ]


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
    provider = SettledBeforeRecorded(settings, lambda p: service.reconcile(db, p))

    payment = await _paid_through(provider, db, order)

    assert provider.outcomes == [1]  # the reconciler did record the charge first
    assert payment.order_id == order.id
    await _charged_once(db, bus, stripe_client, payment)


async def test_a_retry_that_records_a_live_requests_charge_is_409_and_the_request_201(
    orders: Orders,
    settings: Settings,
    db: Database,
    bus: EventBus,
    stripe_client: stripe.StripeClient,
) -> None:
    """Race (request vs retry): a retry finding the attempt pending asks Stripe and
    records the charge, but the request that made it is alive: that request answers
    201, the retry 409 already paid. One charge, one 201."""
    order = await orders.placed(price="16.00")

    async def retry(provider: PaymentProvider) -> object:
        try:
            return await service.pay(
                db, provider, user_id=order.user_id, order_id=order.id, token="tok_visa"
            )
        except OrderAlreadyPaid as refused:
            return refused

    provider = SettledBeforeRecorded(settings, retry)
    payment = await _paid_through(provider, db, order)

    [retried] = provider.outcomes
    assert isinstance(retried, OrderAlreadyPaid)
    await _charged_once(db, bus, stripe_client, payment)
