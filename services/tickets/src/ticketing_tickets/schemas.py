"""Tickets' request and response bodies (camelCase on the wire).

Titles are trimmed here, so everything past the route sees the title as it
is stored. A title is one line of text (the shared ``SingleLine``): no control
characters, no lone surrogates, which would otherwise fail in the database as a 500.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, StringConstraints

from ticketing_common.money import Price, from_cents
from ticketing_common.schemas import CamelModel
from ticketing_common.validation import SingleLine
from ticketing_tickets.models import TITLE_MAX_LENGTH, Ticket


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

    @classmethod
    def of(cls, ticket: Ticket) -> TicketRead:
        return cls(
            id=ticket.id,
            title=ticket.title,
            price=from_cents(ticket.price_cents),
            user_id=ticket.user_id,
            version=ticket.version,
            order_id=ticket.order_id,
        )
