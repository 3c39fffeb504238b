"""Refunds: of a charge, or of an intent's latest successful charge, partial ones
adding up to at most what was paid; and listed."""

from __future__ import annotations

from collections.abc import Mapping

from ticketing_stripe_sandbox.errors import StripeError, invalid_params
from ticketing_stripe_sandbox.forms import Form, Json
from ticketing_stripe_sandbox.models import Refund, format_amount, new_id
from ticketing_stripe_sandbox.params import Params
from ticketing_stripe_sandbox.repository import Account
from ticketing_stripe_sandbox.resources.common import LIST_PARAMS, expand, expansions, list_page

REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")


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
    return list_page(account, refunds, params, paths, "/v1/refunds")
