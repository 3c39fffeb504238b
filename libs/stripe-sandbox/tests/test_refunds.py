"""Refunds through the real Stripe SDK: by PaymentIntent or charge, the charge marked
refunded, a second full refund refused, partial refunds bounded by what was paid."""

from __future__ import annotations

import asyncio

import pytest
import stripe

pytestmark = pytest.mark.asyncio


async def _paid(client: stripe.StripeClient, amount: int = 2050) -> stripe.PaymentIntent:
    return await client.v1.payment_intents.create_async(
        {
            "amount": amount,
            "currency": "usd",
            "allowed_payment_method_types": ["card"],
            "payment_method": "pm_card_visa",
            "confirm": True,
        }
    )


async def test_refund_by_payment_intent_refunds_its_charge_in_full(
    client: stripe.StripeClient,
) -> None:
    intent = await _paid(client)

    refund = await client.v1.refunds.create_async({"payment_intent": intent.id})
    charge = await client.v1.charges.retrieve_async(str(intent.latest_charge))
    fetched = await client.v1.refunds.retrieve_async(refund.id)

    assert refund.id.startswith("re_")
    assert refund.status == "succeeded"
    assert refund.amount == 2050
    assert refund.payment_intent == intent.id
    assert refund.charge == charge.id
    assert fetched.id == refund.id
    assert charge.refunded is True
    assert charge.amount_refunded == 2050


async def test_a_second_refund_of_a_refunded_charge_is_charge_already_refunded(
    client: stripe.StripeClient,
) -> None:
    intent = await _paid(client)
    await client.v1.refunds.create_async({"payment_intent": intent.id})

    with pytest.raises(stripe.InvalidRequestError) as again:
        await client.v1.refunds.create_async({"charge": str(intent.latest_charge)})
    refunds = await client.v1.refunds.list_async({"payment_intent": intent.id})

    assert again.value.http_status == 400
    assert again.value.code == "charge_already_refunded"
    assert len(refunds.data) == 1


async def test_refund_retried_with_its_key_refunds_once(client: stripe.StripeClient) -> None:
    intent = await _paid(client)

    first = await client.v1.refunds.create_async(
        {"payment_intent": intent.id}, {"idempotency_key": "refund-order-1"}
    )
    again = await client.v1.refunds.create_async(
        {"payment_intent": intent.id}, {"idempotency_key": "refund-order-1"}
    )

    assert again.id == first.id


async def test_concurrent_refunds_never_refund_more_than_was_paid(
    client: stripe.StripeClient,
) -> None:
    intent = await _paid(client, amount=3000)

    results = await asyncio.gather(
        *(
            client.v1.refunds.create_async({"payment_intent": intent.id, "amount": 1000})
            for _ in range(5)
        ),
        return_exceptions=True,
    )
    charge = await client.v1.charges.retrieve_async(str(intent.latest_charge))

    refunded = [r for r in results if isinstance(r, stripe.Refund)]
    assert len(refunded) == 3
    assert charge.amount_refunded == 3000
    assert charge.refunded is True


async def test_an_intent_without_a_successful_charge_cannot_be_refunded(
    client: stripe.StripeClient,
) -> None:
    intent = await client.v1.payment_intents.create_async(
        {"amount": 2050, "currency": "usd", "allowed_payment_method_types": ["card"]}
    )

    with pytest.raises(stripe.InvalidRequestError) as refused:
        await client.v1.refunds.create_async({"payment_intent": intent.id})

    assert refused.value.param == "payment_intent"


async def test_refund_needs_a_payment_intent_or_a_charge(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as missing:
        await client.v1.refunds.create_async({})

    assert missing.value.code == "parameter_missing"
