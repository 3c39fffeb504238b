"""Tickets' request and response bodies (camelCase on the wire).

Titles are trimmed here, so everything past the route sees the title as it
is stored. A title is one line of text (the shared ``SingleLine``): no control
characters, no lone surrogates, which would otherwise fail in the database as a 500.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

from pydantic import AfterValidator, PlainSerializer, StringConstraints

from ticketing_common.money import Price, from_cents
from ticketing_common.schemas import CamelModel
from ticketing_common.validation import SingleLine
from ticketing_tickets.models import TITLE_MAX_LENGTH, Ticket, TicketStatus

if TYPE_CHECKING:
    from ticketing_tickets.service import SellerListings


def _title_length(value: str) -> str:
    if not 1 <= len(value) <= TITLE_MAX_LENGTH:
        raise ValueError(f"Title must be between 1 and {TITLE_MAX_LENGTH} characters")
    return value


Title = Annotated[
    SingleLine,
    StringConstraints(strip_whitespace=True),
    AfterValidator(_title_length),
]


class TicketWrite(CamelModel):
    """The body of ``POST /`` and ``PUT /{id}``: both replace title and price."""

    title: Title
    price: Price


class TicketRead(CamelModel):
    id: UUID
    title: str
    price: Price
    user_id: UUID
    version: int
    order_id: UUID | None
    status: TicketStatus

    @classmethod
    def of(cls, ticket: Ticket) -> TicketRead:
        return cls(
            id=ticket.id,
            title=ticket.title,
            price=from_cents(ticket.price_cents),
            user_id=ticket.user_id,
            version=ticket.version,
            order_id=ticket.order_id,
            status=ticket.status,
        )


# A sum of prices: a JSON number like a price, and zero when nothing was sold.
Amount = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]


class SellerTotalsRead(CamelModel):
    for_sale: int
    reserved: int
    sold: int
    withdrawn: int
    revenue: Amount


class SellerListingsRead(CamelModel):
    """The body of ``GET /mine``: the seller's listings, newest first, and their totals."""

    listings: list[TicketRead]
    totals: SellerTotalsRead

    @classmethod
    def of(cls, found: SellerListings) -> SellerListingsRead:
        totals = found.totals
        return cls(
            listings=[TicketRead.of(ticket) for ticket in found.listings],
            totals=SellerTotalsRead(
                for_sale=totals.for_sale,
                reserved=totals.reserved,
                sold=totals.sold,
                withdrawn=totals.withdrawn,
                revenue=totals.revenue,
            ),
        )
