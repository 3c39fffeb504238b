"""Tickets' request and response bodies (camelCase on the wire).

Titles are trimmed here, so everything past the route sees the title as it
is stored. A title is one line of text (the shared ``SingleLine``): no control
characters, no lone surrogates, which would otherwise fail in the database as a 500.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Annotated
from uuid import UUID

from pydantic import AfterValidator, PlainSerializer, StrictInt, StringConstraints

from ticketing_common.money import Price, from_cents
from ticketing_common.schemas import CamelModel
from ticketing_common.validation import SingleLine
from ticketing_tickets.models import (
    MAX_UNITS_PER_LISTING,
    TITLE_MAX_LENGTH,
    Ticket,
    TicketStatus,
)

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


def _quantity_range(value: int) -> int:
    if not 1 <= value <= MAX_UNITS_PER_LISTING:
        raise ValueError(f"Quantity must be between 1 and {MAX_UNITS_PER_LISTING}")
    return value


# Strict: a whole JSON number, not a string or a boolean that would pass as one.
Quantity = Annotated[StrictInt, AfterValidator(_quantity_range)]


class TicketWrite(CamelModel):
    """The body of ``PUT /{id}``: it replaces title and price (a ``quantity`` sent is
    ignored: it is fixed when listed)."""

    title: Title
    price: Price


class TicketCreate(TicketWrite):
    """The body of ``POST /``: with ``quantity``, a general-admission listing of that
    many units; without, one seat."""

    quantity: Quantity | None = None


class UnitsRead(CamelModel):
    total: int
    available: int
    held: int
    sold: int


class TicketRead(CamelModel):
    id: UUID
    title: str
    price: Price
    user_id: UUID
    version: int
    order_id: UUID | None
    status: TicketStatus
    general_admission: bool
    units: UnitsRead

    @classmethod
    def of(cls, ticket: Ticket) -> TicketRead:
        units = ticket.units
        return cls(
            id=ticket.id,
            title=ticket.title,
            price=from_cents(ticket.price_cents),
            user_id=ticket.user_id,
            version=ticket.version,
            order_id=ticket.order_id,
            status=ticket.status,
            general_admission=ticket.general_admission,
            units=UnitsRead(
                total=units.total, available=units.available, held=units.held, sold=units.sold
            ),
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
