"""The ``stripe_api`` fixture other packages use: it answers sync and async tests alike,
and it picks the sandbox or the real API from ``STRIPE_SECRET_KEY``."""

from __future__ import annotations

import pytest
import stripe

from ticketing_stripe_sandbox.testing import (
    SANDBOX_SECRET_KEY,
    STRIPE_API_BASE,
    StripeApi,
    serve_sandbox,
    stripe_api_from_environment,
    stripe_client,
)

PAID = {
    "amount": 1000,
    "currency": "usd",
    "allowed_payment_method_types": ["card"],
    "payment_method": "pm_card_visa",
    "confirm": True,
}


def test_a_sync_test_can_pay_through_the_session_api(stripe_api: StripeApi) -> None:
    client = stripe_client(stripe_api)

    intent = client.v1.payment_intents.create(PAID)  # type: ignore[arg-type]

    assert intent.status == "succeeded"
    if stripe_api.sandbox:
        assert stripe_api.secret_key == SANDBOX_SECRET_KEY
        assert stripe_api.api_base.startswith("http://127.0.0.1:")


@pytest.mark.asyncio
async def test_an_async_test_can_pay_through_the_session_api(stripe_api: StripeApi) -> None:
    client = stripe_client(stripe_api)

    intent = await client.v1.payment_intents.create_async(PAID)  # type: ignore[arg-type]
    refund = await client.v1.refunds.create_async({"payment_intent": intent.id})

    assert refund.status == "succeeded"


def test_without_a_secret_key_the_sandbox_is_used() -> None:
    assert stripe_api_from_environment({}) is None
    assert stripe_api_from_environment({"STRIPE_SECRET_KEY": "  "}) is None


def test_with_a_test_key_the_real_api_is_used() -> None:
    api = stripe_api_from_environment({"STRIPE_SECRET_KEY": "sk_test_real"})

    assert api == StripeApi(STRIPE_API_BASE, "sk_test_real", sandbox=False)


def test_stripe_api_base_overrides_the_real_api_address() -> None:
    api = stripe_api_from_environment(
        {"STRIPE_SECRET_KEY": "sk_test_real", "STRIPE_API_BASE": "http://127.0.0.1:12111"}
    )

    assert api is not None
    assert api.api_base == "http://127.0.0.1:12111"


def test_a_live_key_is_refused_for_tests() -> None:
    with pytest.raises(pytest.UsageError, match="test-mode key"):
        stripe_api_from_environment({"STRIPE_SECRET_KEY": "sk_live_real_money"})


def test_serve_sandbox_stops_when_the_block_ends() -> None:
    with serve_sandbox() as url:
        client = stripe_client(StripeApi(url, "sk_test_block", sandbox=True))
        listed = client.v1.payment_intents.list()

    after = stripe_client(StripeApi(url, "sk_test_block", sandbox=True), max_network_retries=0)
    with pytest.raises(stripe.APIConnectionError):
        after.v1.payment_intents.list()

    assert listed.data == []
