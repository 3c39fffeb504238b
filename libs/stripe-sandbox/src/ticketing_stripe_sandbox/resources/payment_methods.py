"""Payment methods: the card a request names (a ``pm_…`` id, a test name such as
``pm_card_visa``, or ``payment_method_data`` with a test token) and the payment
method types it allows. The sandbox has no endpoint of their own: they are made
by the PaymentIntent requests that name them."""

from __future__ import annotations

from ticketing_stripe_sandbox.cards import payment_method_card, token_card
from ticketing_stripe_sandbox.errors import invalid_params, parameter_missing
from ticketing_stripe_sandbox.models import PaymentMethod
from ticketing_stripe_sandbox.params import Params
from ticketing_stripe_sandbox.repository import Account

PAYMENT_METHOD_DATA_PARAMS = ("type", "card", "billing_details", "metadata", "allow_redisplay")


def read_payment_method_types(params: Params) -> list[str] | None:
    """``allowed_payment_method_types`` (current API versions) or ``payment_method_types``
    (older ones): only ``card`` exists here."""
    name = "allowed_payment_method_types"
    if not params.has(name):
        name = "payment_method_types"
    elif params.has("payment_method_types"):
        raise invalid_params(
            "You may only specify one of these parameters: allowed_payment_method_types, "
            "payment_method_types.",
            param=name,
        )
    types = params.strings(name)
    if types is None:
        return None
    for kind in types:
        if kind != "card":
            raise invalid_params(
                f'The payment method type "{kind}" is invalid. The Stripe sandbox supports '
                'only "card".',
                param=name,
                code="payment_intent_invalid_parameter",
            )
    if not types:
        raise invalid_params("Invalid array", param=name)
    return types


def read_payment_method(account: Account, params: Params) -> PaymentMethod | None:
    """The payment method a request names, made from a test name or token when needed.
    Reads only; the caller stores it once the request is going to use it."""
    name = params.string("payment_method")
    data = params.hash("payment_method_data", PAYMENT_METHOD_DATA_PARAMS)
    if name and data is not None:
        raise invalid_params(
            "You cannot provide both payment_method and payment_method_data.",
            param="payment_method_data",
        )
    if name:
        existing = account.payment_methods.get(name)
        if existing is not None:
            return existing
        card = payment_method_card(name)
        if card is None:
            raise invalid_params(
                f"No such PaymentMethod: '{name}'", param="payment_method", code="resource_missing"
            )
        return PaymentMethod.of(card)
    if data is None:
        return None
    data.string("type", required=True, choices=("card",))
    card_params = data.hash("card", ("token",))
    if card_params is None:
        raise parameter_missing("payment_method_data[card]")
    token = card_params.string("token", required=True) or ""
    card = token_card(token)
    if card is None:
        raise invalid_params(
            f"No such token: '{token}'",
            param="payment_method_data[card][token]",
            code="resource_missing",
        )
    data.metadata()
    return PaymentMethod.of(card)
