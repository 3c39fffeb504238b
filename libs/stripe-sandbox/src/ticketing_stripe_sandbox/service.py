"""What each endpoint does, with Stripe's rules: PaymentIntents (create, update,
confirm, cancel, list), charges made by confirming, refunds, lists and ``expand``.

Every operation reads its parameters first (a bad one is a 400 that changes
nothing and is not saved for an idempotency key), then takes the lock of the
object it changes, checks the object's state and changes it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from ticketing_stripe_sandbox.cards import payment_method_card, token_card
from ticketing_stripe_sandbox.errors import StripeError, invalid_params, parameter_missing
from ticketing_stripe_sandbox.forms import Form, Json
from ticketing_stripe_sandbox.models import (
    MAXIMUM_AMOUNT,
    MINIMUM_AMOUNTS,
    Charge,
    PaymentIntent,
    PaymentMethod,
    Refund,
    format_amount,
    new_id,
    now,
)
from ticketing_stripe_sandbox.params import Params
from ticketing_stripe_sandbox.repository import Account

UPDATABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
CONFIRMABLE = ("requires_payment_method", "requires_confirmation", "requires_action")
CANCELABLE = (
    "requires_payment_method",
    "requires_capture",
    "requires_confirmation",
    "requires_action",
    "processing",
)
CANCELLATION_REASONS = ("duplicate", "fraudulent", "requested_by_customer", "abandoned")
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")
RETURN_URL_REQUIRED = (
    "A `return_url` must be specified because this Payment Intent is configured to "
    "automatically accept the payment methods enabled in the Dashboard, some of which may "
    "require a full page redirect to succeed. If you do not want to accept redirect-based "
    "payment methods, set `automatic_payment_methods[enabled]` to `true` and "
    "`automatic_payment_methods[allow_redirects]` to `never` when creating Setup Intents "
    "and Payment Intents."
)

# Which fields of which object ``expand`` may replace by the object they name.
EXPANDABLE: dict[str, dict[str, str]] = {
    "payment_intent": {"latest_charge": "charge", "payment_method": "payment_method"},
    "charge": {"payment_intent": "payment_intent"},
    "refund": {"charge": "charge", "payment_intent": "payment_intent"},
    "payment_method": {},
}

# Parameters each endpoint accepts. Those the sandbox stores nothing for (return_url,
# off_session, ...) are accepted because Stripe accepts them; they change nothing here.
CONFIRM_EXTRAS = (
    "error_on_requires_action",
    "off_session",
    "payment_method_options",
    "return_url",
    "use_stripe_sdk",
)
CREATE_PARAMS = (
    "allowed_payment_method_types",
    "amount",
    "automatic_payment_methods",
    "capture_method",
    "confirm",
    "confirmation_method",
    "currency",
    "description",
    "expand",
    "metadata",
    "payment_method",
    "payment_method_data",
    "payment_method_types",
    "receipt_email",
    "statement_descriptor",
    "statement_descriptor_suffix",
    *CONFIRM_EXTRAS,
)
UPDATE_PARAMS = (
    "allowed_payment_method_types",
    "amount",
    "currency",
    "description",
    "expand",
    "metadata",
    "payment_method",
    "payment_method_data",
    "payment_method_types",
    "receipt_email",
    "statement_descriptor",
    "statement_descriptor_suffix",
)
CONFIRM_PARAMS = (
    "allowed_payment_method_types",
    "expand",
    "payment_method",
    "payment_method_data",
    "payment_method_types",
    "receipt_email",
    *CONFIRM_EXTRAS,
)
PAYMENT_METHOD_DATA_PARAMS = ("type", "card", "billing_details", "metadata", "allow_redisplay")
LIST_PARAMS = ("limit", "starting_after", "ending_before", "expand")


# -- expand --------------------------------------------------------------------------


def expansions(params: Params, object_type: str, *, listed: bool = False) -> list[str]:
    """The ``expand[]`` paths of a request, checked against what ``object_type`` (or a list
    of them) can expand; a wrong one is Stripe's 400, before anything runs."""
    paths = params.expand()
    for path in paths:
        parts = path.split(".")
        if listed:
            if parts[0] != "data":
                raise _cannot_expand(parts[0])
            parts = parts[1:]
        current = object_type
        for part in parts:
            target = EXPANDABLE[current].get(part)
            if target is None:
                raise _cannot_expand(part)
            current = target
    return paths


def _cannot_expand(field: str) -> StripeError:
    return invalid_params(f"This property cannot be expanded ({field}).", param="expand")


def expand(account: Account, obj: dict[str, Json], paths: Sequence[str]) -> dict[str, Json]:
    """``obj`` with the fields ``paths`` name replaced by the objects they refer to."""
    result = dict(obj)
    for path in paths:
        _expand_path(account, result, path.split("."))
    return result


def _expand_path(account: Account, obj: dict[str, Json], parts: Sequence[str]) -> None:
    head, rest = parts[0], parts[1:]
    value = obj.get(head)
    if head == "data" and isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and rest:
                _expand_path(account, item, rest)
        return
    if isinstance(value, str):
        found = account.lookup(value)
        if found is None:
            return
        obj[head] = value = found
    if isinstance(value, dict) and rest:
        _expand_path(account, value, rest)


# -- lists ---------------------------------------------------------------------------


def paginate(
    ids: Sequence[str],
    params: Params,
    url: str,
    render: Callable[[str], dict[str, Json]],
) -> dict[str, Json]:
    """Stripe's list object over ``ids`` (newest first) with ``limit``, ``starting_after``
    and ``ending_before``."""
    limit = params.integer("limit", minimum=1)
    if limit is None:
        limit = 10
    if limit > 100:
        raise invalid_params(
            "This value must be less than or equal to 100.",
            param="limit",
            code="parameter_invalid_integer",
        )
    starting_after = params.string("starting_after")
    ending_before = params.string("ending_before")
    selected = list(ids)
    if starting_after:
        if starting_after not in selected:
            raise invalid_params(
                f"No such object: '{starting_after}'",
                param="starting_after",
                code="resource_missing",
            )
        selected = selected[selected.index(starting_after) + 1 :]
        page = selected[:limit]
    elif ending_before:
        if ending_before not in selected:
            raise invalid_params(
                f"No such object: '{ending_before}'",
                param="ending_before",
                code="resource_missing",
            )
        selected = selected[: selected.index(ending_before)]
        page = selected[-limit:]
        return _list_object(url, [render(i) for i in page], len(selected) > len(page))
    else:
        page = selected[:limit]
    return _list_object(url, [render(i) for i in page], len(selected) > len(page))


def _list_object(url: str, data: list[dict[str, Json]], has_more: bool) -> dict[str, Json]:
    return {"object": "list", "data": list[Json](data), "has_more": has_more, "url": url}


def list_payment_intents(account: Account, form: Mapping[str, Form]) -> dict[str, Json]:
    params = Params(form, LIST_PARAMS)
    paths = expansions(params, "payment_intent", listed=True)
    intents = list(reversed(account.payment_intents.values()))
    listed = paginate(
        [i.id for i in intents],
        params,
        "/v1/payment_intents",
        lambda i: account.payment_intents[i].to_json(),
    )
    return expand(account, listed, paths)


def list_charges(account: Account, form: Mapping[str, Form]) -> dict[str, Json]:
    params = Params(form, (*LIST_PARAMS, "payment_intent"))
    paths = expansions(params, "charge", listed=True)
    intent = params.string("payment_intent")
    charges = [
        c
        for c in reversed(account.charges.values())
        if intent is None or c.payment_intent == intent
    ]
    listed = paginate(
        [c.id for c in charges], params, "/v1/charges", lambda i: account.charges[i].to_json()
    )
    return expand(account, listed, paths)


def list_refunds(account: Account, form: Mapping[str, Form]) -> dict[str, Json]:
    params = Params(form, (*LIST_PARAMS, "payment_intent", "charge"))
    paths = expansions(params, "refund", listed=True)
    intent = params.string("payment_intent")
    charge = params.string("charge")
    refunds = [
        r
        for r in reversed(account.refunds.values())
        if (intent is None or r.payment_intent == intent) and (charge is None or r.charge == charge)
    ]
    listed = paginate(
        [r.id for r in refunds], params, "/v1/refunds", lambda i: account.refunds[i].to_json()
    )
    return expand(account, listed, paths)


# -- retrieve ------------------------------------------------------------------------


def retrieve(
    account: Account, form: Mapping[str, Form], object_id: str, kind: str
) -> dict[str, Json]:
    params = Params(form, ("expand", "client_secret") if kind == "payment_intent" else ("expand",))
    paths = expansions(params, kind)
    found: PaymentIntent | Charge | Refund
    if kind == "payment_intent":
        found = account.payment_intent(object_id)
    elif kind == "charge":
        found = account.charge(object_id)
    else:
        found = account.refund(object_id)
    return expand(account, found.to_json(), paths)


# -- payment intents -----------------------------------------------------------------


def _amount(params: Params, currency: str, *, required: bool) -> int | None:
    amount = params.integer("amount", required=required, minimum=1)
    if amount is None:
        return None
    minimum = MINIMUM_AMOUNTS[currency]
    if amount < minimum:
        raise invalid_params(
            f"Amount must be at least {format_amount(minimum, currency)}",
            param="amount",
            code="amount_too_small",
        )
    if amount > MAXIMUM_AMOUNT:
        raise invalid_params(
            f"Amount must be no more than {format_amount(MAXIMUM_AMOUNT, currency)}",
            param="amount",
            code="amount_too_large",
        )
    return amount


def _currency(params: Params, *, required: bool) -> str | None:
    currency = params.string("currency", required=required)
    if currency is None:
        return None
    currency = currency.lower()
    if currency not in MINIMUM_AMOUNTS:
        raise invalid_params(
            f"Invalid currency: {currency}. The Stripe sandbox supports these currencies: "
            + ", ".join(sorted(MINIMUM_AMOUNTS)),
            param="currency",
            code="parameter_invalid_string",
        )
    return currency


def _payment_method_types(params: Params) -> list[str] | None:
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


def _automatic_payment_methods(params: Params) -> dict[str, Json] | None:
    apm = params.hash("automatic_payment_methods", ("enabled", "allow_redirects"))
    if apm is None:
        return None
    enabled = apm.boolean("enabled")
    if enabled is None:
        raise parameter_missing("automatic_payment_methods[enabled]")
    allow = apm.string("allow_redirects", choices=("always", "never")) or "always"
    return {"enabled": enabled, "allow_redirects": allow}


def _payment_method(account: Account, params: Params) -> PaymentMethod | None:
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


def create_payment_intent(account: Account, form: Mapping[str, Form]) -> dict[str, Json]:
    params = Params(form, CREATE_PARAMS)
    paths = expansions(params, "payment_intent")
    currency = _currency(params, required=True) or "usd"
    amount = _amount(params, currency, required=True) or 0
    types = _payment_method_types(params)
    apm = _automatic_payment_methods(params)
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
    method = _payment_method(account, params)
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
        _check_confirmable(intent, method, params)
    elif not _confirm_only_params_absent(params):
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
        _charge(account, intent, method)
    return expand(account, intent.to_json(), paths)


def _confirm_only_params_absent(params: Params) -> bool:
    return not any(params.has(name) for name in ("return_url", "off_session"))


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
    currency = _currency(params, required=False)
    amount = _amount(params, currency or intent.currency, required=False)
    types = _payment_method_types(params)
    method = _payment_method(account, params)
    metadata = params.metadata()
    changes_payment = any(v is not None for v in (currency, amount, types, method))
    if changes_payment and intent.status not in UPDATABLE:
        raise StripeError(
            400,
            "This PaymentIntent's amount, currency, payment_method_types and payment_method "
            f"could not be updated because it has a status of {intent.status}. You may only "
            "update these fields of a PaymentIntent with one of the following statuses: "
            + ", ".join(UPDATABLE)
            + ".",
            code="payment_intent_unexpected_state",
            extra={"payment_intent": intent.to_json()},
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
    _payment_method_types(params)
    account.payment_intent(intent_id)
    # Held across check and charge: of two concurrent confirms exactly one charges, the
    # other then sees the intent succeeded.
    async with account.lock(intent_id):
        intent = account.payment_intent(intent_id)
        method = _payment_method(account, params)
        _check_confirmable(intent, method, params)
        if method is not None:
            account.add_payment_method(method)
        _charge(account, intent, method)
    return expand(account, intent.to_json(), paths)


def _check_confirmable(intent: PaymentIntent, method: PaymentMethod | None, params: Params) -> None:
    if intent.status == "succeeded":
        raise StripeError(
            400,
            "You cannot confirm this PaymentIntent because it has already succeeded after "
            "being previously confirmed.",
            code="payment_intent_unexpected_state",
            extra={"payment_intent": intent.to_json()},
        )
    if intent.status not in CONFIRMABLE:
        raise StripeError(
            400,
            f"You cannot confirm this PaymentIntent because it has a status of {intent.status}. "
            "Only a PaymentIntent with one of the following statuses may be confirmed: "
            + ", ".join(CONFIRMABLE)
            + ".",
            code="payment_intent_unexpected_state",
            extra={"payment_intent": intent.to_json()},
        )
    if method is None and intent.payment_method is None:
        raise StripeError(
            400,
            "You cannot confirm this PaymentIntent because it's missing a payment method. "
            "You can either update the PaymentIntent with a payment method and then confirm "
            "it again, or confirm it again directly with a payment method.",
            code="payment_intent_unexpected_state",
            extra={"payment_intent": intent.to_json()},
        )
    if intent.redirects_allowed and not params.string("return_url"):
        raise StripeError(400, RETURN_URL_REQUIRED, param="return_url")


def _charge(account: Account, intent: PaymentIntent, method: PaymentMethod | None) -> None:
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
            raise StripeError(
                400,
                f"You cannot cancel this PaymentIntent because it has a status of "
                f"{intent.status}. Only a PaymentIntent with one of the following statuses may "
                "be canceled: " + ", ".join(CANCELABLE) + ".",
                code="payment_intent_unexpected_state",
                extra={"payment_intent": intent.to_json()},
            )
        intent.status = "canceled"
        intent.canceled_at = now()
        intent.cancellation_reason = reason
        account.save(intent)
    return expand(account, intent.to_json(), paths)


# -- refunds -------------------------------------------------------------------------


async def create_refund(account: Account, form: Mapping[str, Form]) -> dict[str, Json]:
    params = Params(form, ("payment_intent", "charge", "amount", "reason", "metadata", "expand"))
    paths = expansions(params, "refund")
    intent_id = params.string("payment_intent")
    charge_id = params.string("charge")
    amount = params.integer("amount", minimum=1)
    reason = params.string("reason", choices=REFUND_REASONS)
    metadata = {k: v for k, v in (params.metadata() or {}).items() if v != ""}
    if not intent_id and not charge_id:
        raise invalid_params(
            "One of the following params should be provided for this request: "
            "payment_intent or charge.",
            code="parameter_missing",
        )
    if charge_id:
        charge = account.charge(charge_id, param="charge")
        if intent_id and charge.payment_intent != intent_id:
            raise invalid_params(
                f"Charge {charge_id} does not belong to PaymentIntent {intent_id}.",
                param="charge",
            )
    else:
        intent = account.payment_intent(intent_id or "", param="payment_intent")
        latest = account.charges.get(intent.latest_charge or "")
        if latest is None or not latest.succeeded:
            raise StripeError(
                400,
                f"This PaymentIntent ({intent.id}) does not have a successful charge to refund.",
                param="payment_intent",
            )
        charge = latest
    # Held across check and update: two concurrent refunds never refund more than was paid.
    async with account.lock(charge.id):
        if not charge.succeeded:
            raise StripeError(
                400, f"Charge {charge.id} has failed and cannot be refunded.", param="charge"
            )
        if charge.refunded:
            raise StripeError(
                400,
                f"Charge {charge.id} has already been refunded.",
                code="charge_already_refunded",
            )
        remaining = charge.amount - charge.amount_refunded
        if amount is None:
            amount = remaining
        if amount > remaining:
            raise StripeError(
                400,
                f"Refund amount ({format_amount(amount, charge.currency)}) is greater than "
                f"unrefunded amount on charge ({format_amount(remaining, charge.currency)})",
                param="amount",
                code="amount_too_large",
            )
        refund = Refund(
            id=new_id("re"),
            amount=amount,
            currency=charge.currency,
            charge=charge.id,
            payment_intent=charge.payment_intent,
            metadata=metadata,
            reason=reason,
        )
        account.add_refund(refund)
        charge.amount_refunded += amount
        account.save(charge)
    return expand(account, refund.to_json(), paths)
