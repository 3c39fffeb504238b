"""What the PaymentIntent endpoints accept, and the readers of the fields they share
(amount, currency, automatic payment methods), each with Stripe's 400 for a bad
value."""

from __future__ import annotations

from ticketing_stripe_sandbox.errors import invalid_params, parameter_missing
from ticketing_stripe_sandbox.forms import Json
from ticketing_stripe_sandbox.models import MAXIMUM_AMOUNT, MINIMUM_AMOUNTS, format_amount
from ticketing_stripe_sandbox.params import Params

# Parameters each endpoint accepts. Those the sandbox stores nothing for (return_url,
# off_session, ...) are accepted because Stripe accepts them; they change nothing here.
CONFIRM_EXTRAS = (
    "error_on_requires_action",
    "off_session",
    "payment_method_options",
    "return_url",
    "use_stripe_sdk",
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
# Create sets what update can, and how the intent is paid and whether to confirm it now.
CREATE_PARAMS = (
    *UPDATE_PARAMS,
    "automatic_payment_methods",
    "capture_method",
    "confirm",
    "confirmation_method",
    *CONFIRM_EXTRAS,
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
# Only a confirming request may carry these.
CONFIRM_ONLY = ("return_url", "off_session")


def read_amount(params: Params, currency: str, *, required: bool) -> int | None:
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


def read_currency(params: Params, *, required: bool) -> str | None:
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


def read_automatic_payment_methods(params: Params) -> dict[str, Json] | None:
    apm = params.hash("automatic_payment_methods", ("enabled", "allow_redirects"))
    if apm is None:
        return None
    enabled = apm.boolean("enabled")
    if enabled is None:
        raise parameter_missing("automatic_payment_methods[enabled]")
    allow = apm.string("allow_redirects", choices=("always", "never")) or "always"
    return {"enabled": enabled, "allow_redirects": allow}
