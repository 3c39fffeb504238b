"""Charges: made by confirming a PaymentIntent (whether it may be confirmed, the
charge, and what a declined card does to the intent), and listed."""

from __future__ import annotations

from collections.abc import Mapping

from ticketing_stripe_sandbox.errors import StripeError, unexpected_state
from ticketing_stripe_sandbox.forms import Form, Json
from ticketing_stripe_sandbox.models import Charge, PaymentIntent, PaymentMethod, new_id
from ticketing_stripe_sandbox.params import Params
from ticketing_stripe_sandbox.repository import Account
from ticketing_stripe_sandbox.resources.common import LIST_PARAMS, expansions, list_page

CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
RETURN_URL_REQUIRED = (
    "A `return_url` must be specified because this Payment Intent is configured to "
    "automatically accept the payment methods enabled in the Dashboard, some of which may "
    "require a full page redirect to succeed. If you do not want to accept redirect-based "
    "payment methods, set `automatic_payment_methods[enabled]` to `true` and "
    "`automatic_payment_methods[allow_redirects]` to `never` when creating Setup Intents "
    "and Payment Intents."
)


def check_confirmable(intent: PaymentIntent, method: PaymentMethod | None, params: Params) -> None:
    if intent.status == "succeeded":
        raise unexpected_state(
            "You cannot confirm this PaymentIntent because it has already succeeded after "
            "being previously confirmed.",
            intent.to_json(),
        )
    if intent.status not in CONFIRMABLE:
        raise unexpected_state(
            f"You cannot confirm this PaymentIntent because it has a status of {intent.status}. "
            "Only a PaymentIntent with one of the following statuses may be confirmed: "
            + ", ".join(CONFIRMABLE)
            + ".",
            intent.to_json(),
        )
    if method is None and intent.payment_method is None:
        raise unexpected_state(
            "You cannot confirm this PaymentIntent because it's missing a payment method. "
            "You can either update the PaymentIntent with a payment method and then confirm "
            "it again, or confirm it again directly with a payment method.",
            intent.to_json(),
        )
    if intent.redirects_allowed and not params.string("return_url"):
        raise StripeError(400, RETURN_URL_REQUIRED, param="return_url")


def charge_intent(account: Account, intent: PaymentIntent, method: PaymentMethod | None) -> None:
    """Charge the intent's card: a succeeded charge, or a failed one and a 402 that leaves
    the intent waiting for another payment method."""
    if method is None:
        method = account.payment_methods[intent.payment_method or ""]
    decline = method.card.decline
    charge = Charge(
        id=new_id("ch"),
        amount=intent.amount,
        currency=intent.currency,
        payment_intent=intent.id,
        payment_method=method,
        description=intent.description,
        metadata=dict(intent.metadata),
        failure=decline,
    )
    account.add_charge(charge)
    account.save(intent)  # changed below, declined or not
    intent.latest_charge = charge.id
    if decline is None:
        intent.payment_method = method.id
        intent.status = "succeeded"
        intent.amount_received = intent.amount
        intent.last_payment_error = None
        return
    error: dict[str, Json] = {
        "charge": charge.id,
        "code": decline.code,
        "decline_code": decline.decline_code,
        "doc_url": f"https://docs.stripe.com/error-codes/{decline.code.replace('_', '-')}",
        "message": decline.message,
        "payment_method": method.to_json(),
        "type": "card_error",
    }
    intent.payment_method = None
    intent.status = "requires_payment_method"
    intent.last_payment_error = error
    raise StripeError(
        402,
        decline.message,
        type="card_error",
        code=decline.code,
        extra={
            "charge": charge.id,
            "decline_code": decline.decline_code,
            "payment_intent": intent.to_json(),
            "payment_method": method.to_json(),
        },
    )


def list_charges(account: Account, form: Mapping[str, Form]) -> dict[str, Json]:
    params = Params(form, (*LIST_PARAMS, "payment_intent"))
    paths = expansions(params, "charge", listed=True)
    intent = params.string("payment_intent")
    charges = [
        c
        for c in reversed(account.charges.values())
        if intent is None or c.payment_intent == intent
    ]
    return list_page(account, charges, params, paths, "/v1/charges")
