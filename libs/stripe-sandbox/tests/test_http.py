"""What the SDK does not show directly: authentication, Stripe's error bodies, form
decoding of nested keys, request ids, unknown URLs."""

from __future__ import annotations

import httpx
import pytest
import stripe

from ticketing_common.testing import ServedApp
from ticketing_stripe_sandbox.testing import StripeApi, stripe_client

pytestmark = pytest.mark.asyncio


async def test_a_key_that_is_not_a_test_secret_key_is_an_authentication_error(
    api: StripeApi,
) -> None:
    for key in ("sk_live_abcdefghijklmnop", "pk_test_abcdefghijklmnop", "nonsense"):
        client = stripe_client(api.with_key(key))
        with pytest.raises(stripe.AuthenticationError) as refused:
            await client.v1.payment_intents.list_async()
        assert refused.value.http_status == 401


async def test_no_key_is_401_in_stripes_error_shape(sandbox: ServedApp) -> None:
    async with sandbox.client() as http:
        response = await http.get("/v1/payment_intents")

    assert response.status_code == 401
    assert response.json()["error"]["type"] == "invalid_request_error"
    assert "API key" in response.json()["error"]["message"]
    assert response.headers["request-id"].startswith("req_")


async def test_basic_auth_with_the_key_as_user_name_is_accepted(sandbox: ServedApp) -> None:
    async with sandbox.client(auth=("sk_test_curl", "")) as http:
        response = await http.get("/v1/payment_intents")

    assert response.status_code == 200
    assert response.json()["object"] == "list"


async def test_nested_form_keys_and_appended_lists_are_decoded(raw: httpx.AsyncClient) -> None:
    body = (
        "amount=1200&currency=usd&metadata[order_id]=o%2F1&metadata[note]=a+b"
        "&payment_method_types[]=card&expand[]=latest_charge"
    )

    response = await raw.post(
        "/v1/payment_intents",
        content=body,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 200
    assert response.json()["metadata"] == {"order_id": "o/1", "note": "a b"}
    assert response.json()["payment_method_types"] == ["card"]
    assert response.headers["request-id"].startswith("req_")


async def test_unknown_url_is_stripes_unrecognized_request_url(raw: httpx.AsyncClient) -> None:
    response = await raw.get("/v1/customers")
    wrong_method = await raw.delete("/v1/payment_intents")

    assert response.status_code == 404
    assert response.json()["error"]["message"].startswith(
        "Unrecognized request URL (GET: /v1/customers)"
    )
    assert wrong_method.status_code == 404


async def test_a_broken_nested_key_is_a_400(raw: httpx.AsyncClient) -> None:
    response = await raw.post(
        "/v1/payment_intents",
        content="amount=1200&currency=usd&metadata[order_id=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


async def test_health_answers_without_a_key(sandbox: ServedApp) -> None:
    async with sandbox.client() as http:
        response = await http.get("/_sandbox/health")

    assert response.status_code == 200
