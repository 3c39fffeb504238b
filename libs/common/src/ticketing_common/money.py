"""Money: exact decimals at the edges, integer cents inside.

The API and the events show a price as a JSON number with at most 2 decimals;
databases and Stripe hold integer cents.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import Field, PlainSerializer

MAX_PRICE = Decimal("1000000")

# A positive amount in USD with at most 2 decimals, serialised as a JSON number.
Price = Annotated[
    Decimal,
    Field(gt=0, le=MAX_PRICE, decimal_places=2, allow_inf_nan=False),
    PlainSerializer(float, return_type=float, when_used="json"),
]


def to_cents(amount: Decimal) -> int:
    return int((amount * 100).to_integral_exact())


def from_cents(cents: int) -> Decimal:
    return (Decimal(cents) / 100).quantize(Decimal("0.01"))
