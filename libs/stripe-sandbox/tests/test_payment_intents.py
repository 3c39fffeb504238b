"""PaymentIntents through the real Stripe SDK: create, confirm with test cards, declines
and a second try, retrieve, update, list, cancel, and the states Stripe refuses."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
import stripe
from stripe.params import PaymentIntentConfirmParams, PaymentIntentCreateParams

from ticketing_stripe_sandbox.testing import StripeApi

pytestmark = pytest.mark.asyncio


def with_token(token: str) -> PaymentIntentConfirmParams:
    """Confirm parameters paying with a card token. The SDK's types leave out
    ``payment_method_data[card]``, which Stripe accepts for tokens."""
    params = {"payment_method_data": {"type": "card", "card": {"token": token}}}
    return cast("PaymentIntentConfirmParams", params)


async def _intent(client: stripe.StripeClient, amount: int = 2050) -> stripe.PaymentIntent:
    return await client.v1.payment_intents.create_async(
        {
            "amount": amount,
            "currency": "usd",
            "metadata": {"order_id": "order-1"},
            "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
        }
    )


async def test_confirm_with_a_good_card_succeeds_with_one_charge(
    client: stripe.StripeClient,
) -> None:
    intent = await _intent(client)

    paid = await client.v1.payment_intents.confirm_async(
        intent.id, {"payment_method": "pm_card_visa"}
    )
    charges = await client.v1.charges.list_async({"payment_intent": intent.id})

    assert intent.status == "requires_payment_method"
    assert intent.id.startswith("pi_")
    assert str(intent.client_secret).startswith(f"{intent.id}_secret_")
    assert intent.metadata["order_id"] == "order-1"
    assert paid.status == "succeeded"
    assert paid.amount_received == 2050
    assert paid.latest_charge is not None
    assert [c.id for c in charges.data] == [paid.latest_charge]
    charge = charges.data[0]
    assert charge.status == "succeeded"
    assert charge.amount == 2050
    assert charge.payment_intent == intent.id
    assert charge.refunded is False
    assert charge.metadata["order_id"] == "order-1"
    assert charge.payment_method_details is not None
    assert charge.payment_method_details.card is not None
    assert charge.payment_method_details.card.last4 == "4242"


async def test_a_token_in_payment_method_data_pays_like_a_card(
    client: stripe.StripeClient,
) -> None:
    intent = await _intent(client)

    paid = await client.v1.payment_intents.confirm_async(
        intent.id,
        with_token("tok_mastercard"),
    )
    charge = await client.v1.charges.retrieve_async(str(paid.latest_charge))

    assert paid.status == "succeeded"
    assert isinstance(paid.payment_method, str)
    assert paid.payment_method.startswith("pm_")
    assert charge.payment_method == paid.payment_method
    assert charge.payment_method_details is not None
    assert charge.payment_method_details.card is not None
    assert charge.payment_method_details.card.brand == "mastercard"


async def test_create_with_confirm_true_pays_in_one_call(client: stripe.StripeClient) -> None:
    intent = await client.v1.payment_intents.create_async(
        {
            "amount": 1000,
            "currency": "usd",
            "allowed_payment_method_types": ["card"],
            "payment_method": "pm_card_visa",
            "confirm": True,
        }
    )

    assert intent.status == "succeeded"
    assert intent.amount_received == 1000


async def test_declined_card_is_a_402_card_error_then_another_card_pays_the_same_intent(
    client: stripe.StripeClient,
) -> None:
    intent = await _intent(client)

    with pytest.raises(stripe.CardError) as declined:
        await client.v1.payment_intents.confirm_async(
            intent.id, {"payment_method": "pm_card_chargeDeclined"}
        )
    after_decline = await client.v1.payment_intents.retrieve_async(intent.id)
    paid = await client.v1.payment_intents.confirm_async(
        intent.id,
        with_token("tok_visa"),
    )
    charges = await client.v1.charges.list_async({"payment_intent": intent.id})

    assert declined.value.http_status == 402
    assert declined.value.user_message == "Your card was declined."
    assert declined.value.code == "card_declined"
    assert declined.value.error is not None
    assert declined.value.error.decline_code == "generic_decline"
    assert declined.value.error.payment_intent is not None
    assert declined.value.error.payment_intent.id == intent.id
    assert declined.value.error.payment_intent.status == "requires_payment_method"
    assert after_decline.status == "requires_payment_method"
    assert after_decline.last_payment_error is not None
    assert after_decline.last_payment_error.decline_code == "generic_decline"
    assert paid.id == intent.id
    assert paid.status == "succeeded"
    assert paid.last_payment_error is None
    assert sorted(c.status for c in charges.data) == ["failed", "succeeded"]


async def test_insufficient_funds_says_so(client: stripe.StripeClient) -> None:
    intent = await _intent(client)

    with pytest.raises(stripe.CardError) as declined:
        await client.v1.payment_intents.confirm_async(
            intent.id,
            with_token("tok_chargeDeclinedInsufficientFunds"),
        )

    assert declined.value.user_message == "Your card has insufficient funds."
    assert declined.value.error is not None
    assert declined.value.error.decline_code == "insufficient_funds"


async def test_unknown_token_and_payment_method_are_invalid_requests(
    client: stripe.StripeClient,
) -> None:
    intent = await _intent(client)

    with pytest.raises(stripe.InvalidRequestError) as token:
        await client.v1.payment_intents.confirm_async(intent.id, with_token("tok_nope"))
    with pytest.raises(stripe.InvalidRequestError) as method:
        await client.v1.payment_intents.confirm_async(intent.id, {"payment_method": "pm_nope"})
    unchanged = await client.v1.payment_intents.retrieve_async(intent.id)

    assert token.value.http_status == 400
    assert token.value.code == "resource_missing"
    assert token.value.param == "payment_method_data[card][token]"
    assert token.value.user_message == "No such token: 'tok_nope'"
    assert method.value.code == "resource_missing"
    assert method.value.param == "payment_method"
    assert method.value.user_message == "No such PaymentMethod: 'pm_nope'"
    assert unchanged.status == "requires_payment_method"


async def test_confirming_a_succeeded_intent_is_an_unexpected_state(
    client: stripe.StripeClient,
) -> None:
    intent = await _intent(client)
    await client.v1.payment_intents.confirm_async(intent.id, {"payment_method": "pm_card_visa"})

    with pytest.raises(stripe.InvalidRequestError) as again:
        await client.v1.payment_intents.confirm_async(intent.id, {"payment_method": "pm_card_visa"})
    charges = await client.v1.charges.list_async({"payment_intent": intent.id})

    assert again.value.http_status == 400
    assert again.value.code == "payment_intent_unexpected_state"
    assert len(charges.data) == 1


async def test_concurrent_confirms_of_one_intent_charge_exactly_once(
    client: stripe.StripeClient,
) -> None:
    intent = await _intent(client)

    results = await asyncio.gather(
        *(
            client.v1.payment_intents.confirm_async(intent.id, {"payment_method": "pm_card_visa"})
            for _ in range(8)
        ),
        return_exceptions=True,
    )
    charges = await client.v1.charges.list_async({"payment_intent": intent.id})

    succeeded = [r for r in results if isinstance(r, stripe.PaymentIntent)]
    refused = [r for r in results if isinstance(r, stripe.InvalidRequestError)]
    assert len(succeeded) == 1
    assert len(refused) == 7
    assert {r.code for r in refused} == {"payment_intent_unexpected_state"}
    assert len(charges.data) == 1


async def test_confirm_without_return_url_is_refused_when_redirects_are_allowed(
    client: stripe.StripeClient,
) -> None:
    intent = await client.v1.payment_intents.create_async(
        {
            "amount": 1000,
            "currency": "usd",
            "automatic_payment_methods": {"enabled": True},
        }
    )

    with pytest.raises(stripe.InvalidRequestError) as refused:
        await client.v1.payment_intents.confirm_async(intent.id, {"payment_method": "pm_card_visa"})
    paid = await client.v1.payment_intents.confirm_async(
        intent.id, {"payment_method": "pm_card_visa", "return_url": "https://example.com/done"}
    )

    assert refused.value.param == "return_url"
    assert paid.status == "succeeded"


@pytest.mark.parametrize(
    ("params", "param", "code"),
    [
        ({"currency": "usd"}, "amount", "parameter_missing"),
        ({"amount": 0, "currency": "usd"}, "amount", "parameter_invalid_integer"),
        ({"amount": -5, "currency": "usd"}, "amount", "parameter_invalid_integer"),
        ({"amount": 49, "currency": "usd"}, "amount", "amount_too_small"),
        ({"amount": 100_000_000, "currency": "usd"}, "amount", "amount_too_large"),
        ({"amount": 1000}, "currency", "parameter_missing"),
        ({"amount": 1000, "currency": "xyz"}, "currency", "parameter_invalid_string"),
        ({"amount": 1000, "currency": "usd", "colour": "red"}, "colour", "parameter_unknown"),
    ],
)
async def test_invalid_create_parameters_are_400_naming_the_parameter(
    client: stripe.StripeClient, params: dict[str, object], param: str, code: str
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as invalid:
        await client.v1.payment_intents.create_async(cast("PaymentIntentCreateParams", params))
    listed = await client.v1.payment_intents.list_async()

    assert invalid.value.http_status == 400
    assert invalid.value.param == param
    assert invalid.value.code == code
    assert listed.data == []


async def test_unknown_intent_is_404_resource_missing(client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as missing:
        await client.v1.payment_intents.retrieve_async("pi_unknown")

    assert missing.value.http_status == 404
    assert missing.value.code == "resource_missing"
    assert missing.value.user_message == "No such payment_intent: 'pi_unknown'"


async def test_update_merges_metadata_and_a_blank_value_unsets_a_key(
    client: stripe.StripeClient,
) -> None:
    intent = await _intent(client)

    updated = await client.v1.payment_intents.update_async(
        intent.id,
        {"amount": 3000, "description": "Concert", "metadata": {"order_id": "", "seat": "A1"}},
    )

    assert updated.amount == 3000
    assert updated.description == "Concert"
    assert updated.metadata.to_dict() == {"seat": "A1"}


async def test_amount_of_a_succeeded_intent_cannot_change(client: stripe.StripeClient) -> None:
    intent = await _intent(client)
    await client.v1.payment_intents.confirm_async(intent.id, {"payment_method": "pm_card_visa"})

    with pytest.raises(stripe.InvalidRequestError) as refused:
        await client.v1.payment_intents.update_async(intent.id, {"amount": 99_00})
    kept = await client.v1.payment_intents.retrieve_async(intent.id)

    assert refused.value.code == "payment_intent_unexpected_state"
    assert kept.amount == 2050


async def test_list_is_newest_first_and_pages_with_limit(client: stripe.StripeClient) -> None:
    created = [await _intent(client, amount=1000 + i) for i in range(3)]

    first = await client.v1.payment_intents.list_async({"limit": 2})
    rest = await client.v1.payment_intents.list_async(
        {"limit": 2, "starting_after": first.data[-1].id}
    )

    assert [i.id for i in first.data] == [created[2].id, created[1].id]
    assert first.has_more is True
    assert [i.id for i in rest.data] == [created[0].id]
    assert rest.has_more is False


async def test_list_pages_back_with_ending_before_and_refuses_an_unknown_cursor(
    client: stripe.StripeClient,
) -> None:
    created = [await _intent(client, amount=1000 + i) for i in range(3)]

    before = await client.v1.payment_intents.list_async(
        {"limit": 1, "ending_before": created[0].id}
    )
    with pytest.raises(stripe.InvalidRequestError) as refused:
        await client.v1.payment_intents.list_async({"starting_after": "pi_unknown"})

    assert [i.id for i in before.data] == [created[1].id]
    assert before.has_more is True
    assert refused.value.code == "resource_missing"
    assert refused.value.param == "starting_after"


async def test_list_expands_the_latest_charge_of_each_intent(client: stripe.StripeClient) -> None:
    intent = await _intent(client)
    await client.v1.payment_intents.confirm_async(intent.id, {"payment_method": "pm_card_visa"})

    listed = await client.v1.payment_intents.list_async({"expand": ["data.latest_charge"]})

    assert isinstance(listed.data[0].latest_charge, stripe.Charge)
    assert listed.data[0].latest_charge.status == "succeeded"


async def test_retrieve_expands_the_latest_charge(client: stripe.StripeClient) -> None:
    intent = await _intent(client)
    await client.v1.payment_intents.confirm_async(intent.id, {"payment_method": "pm_card_visa"})

    expanded = await client.v1.payment_intents.retrieve_async(
        intent.id, {"expand": ["latest_charge"]}
    )

    assert isinstance(expanded.latest_charge, stripe.Charge)
    assert expanded.latest_charge.status == "succeeded"


async def test_a_canceled_intent_cannot_be_confirmed(client: stripe.StripeClient) -> None:
    intent = await _intent(client)

    canceled = await client.v1.payment_intents.cancel_async(intent.id)
    with pytest.raises(stripe.InvalidRequestError) as refused:
        await client.v1.payment_intents.confirm_async(intent.id, {"payment_method": "pm_card_visa"})

    assert canceled.status == "canceled"
    assert refused.value.code == "payment_intent_unexpected_state"


async def test_objects_of_one_secret_key_are_invisible_to_another(
    client: stripe.StripeClient, api: StripeApi
) -> None:
    from ticketing_stripe_sandbox.testing import stripe_client

    intent = await _intent(client)
    other = stripe_client(api.with_key("sk_test_someone_else"))

    with pytest.raises(stripe.InvalidRequestError) as missing:
        await other.v1.payment_intents.retrieve_async(intent.id)

    assert missing.value.http_status == 404
