"""Idempotency keys as Stripe honours them: replays, errors saved and replayed, a key
reused with other parameters or another endpoint, concurrent requests with one key,
validation failures not saved."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import stripe
from stripe.params import PaymentIntentConfirmParams, PaymentIntentCreateParams

from ticketing_common.testing import ServedApp, wait_until
from ticketing_stripe_sandbox.repository import Sandbox
from ticketing_stripe_sandbox.testing import StripeApi

pytestmark = pytest.mark.asyncio

PARAMS: PaymentIntentCreateParams = {
    "amount": 2050,
    "currency": "usd",
    "metadata": {"order_id": "order-7"},
    "allowed_payment_method_types": ["card"],
}


async def test_create_with_a_seen_key_and_same_params_returns_the_same_intent(
    client: stripe.StripeClient, raw: httpx.AsyncClient
) -> None:
    first = await client.v1.payment_intents.create_async(PARAMS, {"idempotency_key": "order-7"})
    second = await client.v1.payment_intents.create_async(PARAMS, {"idempotency_key": "order-7"})
    listed = await client.v1.payment_intents.list_async()

    assert second.id == first.id
    assert second.last_response is not None
    assert second.last_response.headers.get("idempotent-replayed") == "true"
    assert [i.id for i in listed.data] == [first.id]


async def test_replayed_response_is_the_saved_one_byte_for_byte(
    raw: httpx.AsyncClient,
) -> None:
    body = "amount=1500&currency=usd&metadata[order_id]=o-1&payment_method_types[0]=card"
    headers = {"Idempotency-Key": "k-1", "Content-Type": "application/x-www-form-urlencoded"}

    first = await raw.post("/v1/payment_intents", content=body, headers=headers)
    second = await raw.post("/v1/payment_intents", content=body, headers=headers)

    assert first.status_code == 200
    assert "idempotent-replayed" not in first.headers
    assert second.content == first.content
    assert second.headers["idempotent-replayed"] == "true"
    assert second.headers["original-request"] == first.headers["request-id"]
    assert second.headers["request-id"] != first.headers["request-id"]


async def test_a_confirm_replayed_by_key_charges_once(client: stripe.StripeClient) -> None:
    intent = await client.v1.payment_intents.create_async(PARAMS)

    first = await client.v1.payment_intents.confirm_async(
        intent.id, {"payment_method": "pm_card_visa"}, {"idempotency_key": "pay-order-7"}
    )
    again = await client.v1.payment_intents.confirm_async(
        intent.id, {"payment_method": "pm_card_visa"}, {"idempotency_key": "pay-order-7"}
    )
    charges = await client.v1.charges.list_async({"payment_intent": intent.id})

    assert first.status == again.status == "succeeded"
    assert again.latest_charge == first.latest_charge
    assert len(charges.data) == 1


async def test_a_decline_is_saved_and_replayed_as_the_same_402(
    client: stripe.StripeClient,
) -> None:
    intent = await client.v1.payment_intents.create_async(PARAMS)
    declined: PaymentIntentConfirmParams = {"payment_method": "pm_card_chargeDeclined"}

    with pytest.raises(stripe.CardError) as first:
        await client.v1.payment_intents.confirm_async(
            intent.id, declined, {"idempotency_key": "pay-1"}
        )
    with pytest.raises(stripe.CardError) as replayed:
        await client.v1.payment_intents.confirm_async(
            intent.id, declined, {"idempotency_key": "pay-1"}
        )
    charges = await client.v1.charges.list_async({"payment_intent": intent.id})

    assert replayed.value.http_body == first.value.http_body
    assert (replayed.value.headers or {}).get("idempotent-replayed") == "true"
    assert len(charges.data) == 1
    assert charges.data[0].status == "failed"


async def test_same_key_with_other_params_is_an_idempotency_error(
    client: stripe.StripeClient,
) -> None:
    first = await client.v1.payment_intents.create_async(PARAMS, {"idempotency_key": "order-8"})

    with pytest.raises(stripe.IdempotencyError) as reused:
        await client.v1.payment_intents.create_async(
            {**PARAMS, "amount": 9999}, {"idempotency_key": "order-8"}
        )
    listed = await client.v1.payment_intents.list_async()

    assert reused.value.http_status == 400
    assert "same parameters" in str(reused.value.user_message)
    assert [i.id for i in listed.data] == [first.id]


async def test_same_key_on_another_endpoint_is_an_idempotency_error(
    client: stripe.StripeClient,
) -> None:
    intent = await client.v1.payment_intents.create_async(PARAMS, {"idempotency_key": "shared"})

    with pytest.raises(stripe.IdempotencyError) as reused:
        await client.v1.payment_intents.confirm_async(
            intent.id, {"payment_method": "pm_card_visa"}, {"idempotency_key": "shared"}
        )

    assert "same endpoint" in str(reused.value.user_message)


async def test_a_validation_failure_is_not_saved_so_the_key_can_be_used_again(
    client: stripe.StripeClient,
) -> None:
    with pytest.raises(stripe.InvalidRequestError):
        await client.v1.payment_intents.create_async(
            {"amount": 10, "currency": "usd"}, {"idempotency_key": "order-9"}
        )

    created = await client.v1.payment_intents.create_async(PARAMS, {"idempotency_key": "order-9"})

    assert created.amount == 2050


async def test_keys_belong_to_one_secret_key(
    client: stripe.StripeClient, raw: httpx.AsyncClient
) -> None:
    mine = await client.v1.payment_intents.create_async(PARAMS, {"idempotency_key": "k"})

    theirs = await raw.post(
        "/v1/payment_intents",
        data={"amount": "2050", "currency": "usd", "payment_method_types[0]": "card"},
        headers={"Authorization": "Bearer sk_test_other_account", "Idempotency-Key": "k"},
    )

    assert theirs.status_code == 200
    assert theirs.json()["id"] != mine.id


async def test_concurrent_requests_with_one_key_create_one_intent(
    client: stripe.StripeClient,
) -> None:
    results = await asyncio.gather(
        *(
            client.v1.payment_intents.create_async(PARAMS, {"idempotency_key": "order-10"})
            for _ in range(6)
        )
    )
    listed = await client.v1.payment_intents.list_async()

    assert len({r.id for r in results}) == 1
    assert len(listed.data) == 1


async def test_a_request_whose_key_is_in_flight_gets_409_then_the_replay(
    sandbox: ServedApp, api: StripeApi, client: stripe.StripeClient, raw: httpx.AsyncClient
) -> None:
    intent = await client.v1.payment_intents.create_async(PARAMS)
    account = sandbox.component(Sandbox).account(api.secret_key)
    url = f"/v1/payment_intents/{intent.id}/confirm"
    body = {"payment_method": "pm_card_visa"}
    headers = {"Idempotency-Key": "pay-in-flight"}

    # Holding the intent's lock keeps the first confirm in flight, its key claimed.
    async with account.lock(intent.id):
        first = asyncio.create_task(raw.post(url, data=body, headers=headers))
        await wait_until(lambda: "pay-in-flight" in account.idempotency)
        second = await raw.post(url, data=body, headers=headers)
    original = await first
    replay = await raw.post(url, data=body, headers=headers)

    assert second.status_code == 409
    assert second.json()["error"]["type"] == "idempotency_error"
    assert original.status_code == 200
    assert original.json()["status"] == "succeeded"
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["latest_charge"] == original.json()["latest_charge"]


async def test_through_the_sdk_an_in_flight_key_is_an_api_error_409_once_retries_run_out(
    sandbox: ServedApp, api: StripeApi, client: stripe.StripeClient
) -> None:
    from ticketing_stripe_sandbox.testing import stripe_client

    intent = await client.v1.payment_intents.create_async(PARAMS)
    account = sandbox.component(Sandbox).account(api.secret_key)
    impatient = stripe_client(api, max_network_retries=0)
    confirm: PaymentIntentConfirmParams = {"payment_method": "pm_card_visa"}

    async with account.lock(intent.id):
        first = asyncio.create_task(
            client.v1.payment_intents.confirm_async(
                intent.id, confirm, {"idempotency_key": "pay-sdk"}
            )
        )
        await wait_until(lambda: "pay-sdk" in account.idempotency)
        with pytest.raises(stripe.APIError) as conflict:
            await impatient.v1.payment_intents.confirm_async(
                intent.id, confirm, {"idempotency_key": "pay-sdk"}
            )
    paid = await first

    assert conflict.value.http_status == 409
    assert paid.status == "succeeded"
