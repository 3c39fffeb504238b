"""What the web client reads from the APIs (camelCase JSON) and what its forms post.

These mirror the public API bodies of SPEC §3 and tolerate extra fields, so a
service adding a field never breaks a page.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from uuid import UUID

from pydantic import BaseModel

from ticketing_common.events.contracts import CancelReason, OrderStatus
from ticketing_common.schemas import CamelModel


class UserRead(CamelModel):
    id: UUID
    email: str


class UnitsRead(CamelModel):
    """A listing's units by where they stand (a seat is a listing of one)."""

    total: int
    available: int
    held: int
    sold: int


class TicketRead(CamelModel):
    id: UUID
    title: str
    price: Decimal
    user_id: UUID
    version: int
    order_id: UUID | None = None
    # A general-admission listing: ``units`` interchangeable seats at one price.
    general_admission: bool = False
    units: UnitsRead | None = None

    @property
    def units_left(self) -> int:
        """Units a buyer may still order (none known: a seat, free unless held)."""
        if self.units is not None:
            return self.units.available
        return int(self.order_id is None)


class TicketPage(BaseModel):
    """One page of tickets for sale; ``has_next`` when the API linked a next page."""

    tickets: list[TicketRead]
    offset: int
    limit: int
    has_next: bool


class OrderTicketRead(CamelModel):
    id: UUID
    title: str
    price: Decimal


class AdmissionRead(CamelModel):
    """A complete order's e-ticket: the code its QR code carries, and when it was used."""

    code: str
    checked_in_at: datetime | None = None


class OrderRead(CamelModel):
    id: UUID
    user_id: UUID
    status: OrderStatus
    expires_at: datetime
    version: int
    ticket: OrderTicketRead
    """The ticket and its unit price."""
    admission: AdmissionRead | None = None
    cancel_reason: CancelReason | None = None
    quantity: int = 1
    total: Decimal | None = None
    """What the buyer pays for all its units (orders decides it)."""

    @property
    def amount(self) -> Decimal:
        """The order's total (a body without one is of one seat: its price)."""
        return self.ticket.price if self.total is None else self.total


class CheckinRead(CamelModel):
    """A ticket admitted at the door (``POST /api/checkins``, 201)."""

    order_id: UUID
    ticket: OrderTicketRead
    checked_in_at: datetime
    checked_in_by: str
    admits: int = 1
    """How many people the one admission lets in (a general-admission order's quantity)."""


class ListingStatus(StrEnum):
    """Where a seller's listing stands (``GET /api/tickets/mine``)."""

    FOR_SALE = "for-sale"
    RESERVED = "reserved"
    SOLD = "sold"
    WITHDRAWN = "withdrawn"


class ListingRead(TicketRead):
    status: ListingStatus


class ListingTotals(CamelModel):
    for_sale: int
    reserved: int
    sold: int
    withdrawn: int
    revenue: Decimal


class ListingsRead(CamelModel):
    """The seller's listings, newest first, and their totals."""

    listings: list[ListingRead]
    totals: ListingTotals


class PaymentRead(CamelModel):
    id: UUID
    order_id: UUID
    stripe_id: str


class FieldError(CamelModel):
    """One message of the shared error shape; ``field`` names the input at fault."""

    message: str
    field: str | None = None


class ErrorBody(CamelModel):
    errors: list[FieldError]
