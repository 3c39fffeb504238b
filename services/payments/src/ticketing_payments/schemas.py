"""Payments' request and response bodies (camelCase JSON)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, StringConstraints

from ticketing_common.schemas import CamelModel
from ticketing_common.validation import SingleLine
from ticketing_payments.models import Payment

# What a browser gets from Stripe.js (a card token or a payment method) or the
# test cards offer: ``tok_visa``, ``pm_card_visa``, ...
CARD_TOKEN_PREFIXES = ("tok_", "pm_")


def _card_token(value: str) -> str:
    if not value.startswith(CARD_TOKEN_PREFIXES):
        raise ValueError("Must be a Stripe card token (tok_...) or payment method (pm_...)")
    return value


CardToken = Annotated[
    SingleLine,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=255),
    AfterValidator(_card_token),
]


class PaymentCreate(CamelModel):
    token: CardToken
    order_id: UUID


class PaymentRead(CamelModel):
    id: UUID
    order_id: UUID
    stripe_id: str

    @classmethod
    def of(cls, payment: Payment) -> PaymentRead:
        return cls(id=payment.id, order_id=payment.order_id, stripe_id=payment.stripe_id)
