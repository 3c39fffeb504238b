"""PaymentIntents: create (and confirm at once), update, confirm, cancel, list.
Confirming charges the card (``charges.py``)."""

from __future__ import annotations

from collections.abc import Mapping

from ticketing_stripe_sandbox.errors import invalid_params, unexpected_state
from ticketing_stripe_sandbox.forms import Form, Json
from ticketing_stripe_sandbox.models import PaymentIntent, new_id, now
from ticketing_stripe_sandbox.params import Params
from ticketing_stripe_sandbox.repository import Account
from ticketing_stripe_sandbox.resources.charges import charge_intent, check_confirmable
from ticketing_stripe_sandbox.resources.common import LIST_PARAMS, expand, expansions, list_page
from ticketing_stripe_sandbox.resources.payment_intent_params import (
    CONFIRM_ONLY,
    CONFIRM_PARAMS,
    CREATE_PARAMS,
    UPDATE_PARAMS,
    read_amount,
    read_automatic_payment_methods,
    read_currency,
)
from ticketing_stripe_sandbox.resources.payment_methods import (
    read_payment_method,
    read_payment_method_types,
)

UPDATABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
CANCELABLE = (
    "requires_payment_method",
    "requires_capture",
    "requires_confirmation",
    "requires_action",
    "processing",
)
CANCELLATION_REASONS = ("duplicate", "fraudulent", "requested_by_customer", "abandoned")


def create_payment_intent(account: Account, form: Mapping[str, Form]) -> dict[str, Json]:
    params = Params(form, CREATE_PARAMS)
    paths = expansions(params, "payment_intent")
    currency = read_currency(params, required=True) or "usd"
    amount = read_amount(params, currency, required=True) or 0
    types = read_payment_method_types(params)
    apm = read_automatic_payment_methods(params)
    if types is not None and apm is not None:
        raise invalid_params(
            "You may only specify one of these parameters: automatic_payment_methods, "
            "payment_method_types.",
            param="automatic_payment_methods",
        )
    if types is None and apm is None:
        # Current API versions enable automatic payment methods unless types are given.
        apm = {"enabled": True, "allow_redirects": "always"}
    capture = params.string("capture_method", choices=("automatic", "automatic_async"))
    confirmation = params.string("confirmation_method", choices=("automatic", "manual"))
    confirm = params.boolean("confirm") or False
    method = read_payment_method(account, params)
    intent = PaymentIntent(
        id=new_id("pi"),
        amount=amount,
        currency=currency,
        metadata={k: v for k, v in (params.metadata() or {}).items() if v != ""},
        description=params.string("description") or None,
        payment_method_types=types or ["card"],
        allowed_payment_method_types=types,
        automatic_payment_methods=apm,
        confirmation_method=confirmation or "automatic",
        capture_method=capture or "automatic_async",
        receipt_email=params.string("receipt_email") or None,
        statement_descriptor=params.string("statement_descriptor") or None,
        statement_descriptor_suffix=params.string("statement_descriptor_suffix") or None,
    )
    if confirm:
        check_confirmable(intent, method, params)
    elif any(params.has(name) for name in CONFIRM_ONLY):
        raise invalid_params(
            "return_url, off_session and similar parameters can only be passed when confirm=true.",
            param="return_url",
        )
    account.add_payment_intent(intent)
    if method is not None:
        account.add_payment_method(method)
        intent.payment_method = method.id
        intent.status = "requires_confirmation"
    if confirm:
        charge_intent(account, intent, method)
    return expand(account, intent.to_json(), paths)


async def update_payment_intent(
    account: Account, form: Mapping[str, Form], intent_id: str
) -> dict[str, Json]:
    params = Params(form, UPDATE_PARAMS)
    paths = expansions(params, "payment_intent")
    async with account.lock(intent_id):
        intent = account.payment_intent(intent_id)
        _update(account, intent, params)
        account.save(intent)
    return expand(account, intent.to_json(), paths)


def _update(account: Account, intent: PaymentIntent, params: Params) -> None:
    currency = read_currency(params, required=False)
    amount = read_amount(params, currency or intent.currency, required=False)
    types = read_payment_method_types(params)
    method = read_payment_method(account, params)
    metadata = params.metadata()
    changes_payment = any(v is not None for v in (currency, amount, types, method))
    if changes_payment and intent.status not in UPDATABLE:
        raise unexpected_state(
            "This PaymentIntent's amount, currency, payment_method_types and payment_method "
            f"could not be updated because it has a status of {intent.status}. You may only "
            "update these fields of a PaymentIntent with one of the following statuses: "
            + ", ".join(UPDATABLE)
            + ".",
            intent.to_json(),
        )
    if currency is not None:
        intent.currency = currency
    if amount is not None:
        intent.amount = amount
    if types is not None:
        intent.payment_method_types = types
        intent.allowed_payment_method_types = types
        intent.automatic_payment_methods = None
    if method is not None:
        account.add_payment_method(method)
        intent.payment_method = method.id
        intent.status = "requires_confirmation"
    if metadata is not None:
        if not metadata:
            intent.metadata = {}
        for key, value in metadata.items():
            # A blank value unsets the key, as in Stripe.
            if value == "":
                intent.metadata.pop(key, None)
            else:
                intent.metadata[key] = value
    if params.has("description"):
        intent.description = params.string("description") or None
    if params.has("receipt_email"):
        intent.receipt_email = params.string("receipt_email") or None


async def confirm_payment_intent(
    account: Account, form: Mapping[str, Form], intent_id: str
) -> dict[str, Json]:
    params = Params(form, CONFIRM_PARAMS)
    paths = expansions(params, "payment_intent")
    read_payment_method_types(params)
    account.payment_intent(intent_id)
    # Held across check and charge: of two concurrent confirms exactly one charges, the
    # other then sees the intent succeeded.
    async with account.lock(intent_id):
        intent = account.payment_intent(intent_id)
        method = read_payment_method(account, params)
        check_confirmable(intent, method, params)
        if method is not None:
            account.add_payment_method(method)
        charge_intent(account, intent, method)
    return expand(account, intent.to_json(), paths)


async def cancel_payment_intent(
    account: Account, form: Mapping[str, Form], intent_id: str
) -> dict[str, Json]:
    params = Params(form, ("cancellation_reason", "expand"))
    paths = expansions(params, "payment_intent")
    reason = params.string("cancellation_reason", choices=CANCELLATION_REASONS)
    account.payment_intent(intent_id)
    async with account.lock(intent_id):
        intent = account.payment_intent(intent_id)
        if intent.status not in CANCELABLE:
            raise unexpected_state(
                f"You cannot cancel this PaymentIntent because it has a status of "
                f"{intent.status}. Only a PaymentIntent with one of the following statuses may "
                "be canceled: " + ", ".join(CANCELABLE) + ".",
                intent.to_json(),
            )
        intent.status = "canceled"
        intent.canceled_at = now()
        intent.cancellation_reason = reason
        account.save(intent)
    return expand(account, intent.to_json(), paths)


def list_payment_intents(account: Account, form: Mapping[str, Form]) -> dict[str, Json]:
    params = Params(form, LIST_PARAMS)
    paths = expansions(params, "payment_intent", listed=True)
    intents = list(reversed(account.payment_intents.values()))
    return list_page(account, intents, params, paths, "/v1/payment_intents")
