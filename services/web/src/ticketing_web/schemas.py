"""What the web client reads from the APIs (camelCase JSON) and what its forms post.

These mirror the public API bodies of SPEC §3 and tolerate extra fields, so a
service adding a field never breaks a page.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from pydantic import BaseModel

from ticketing_common.events.contracts import OrderStatus
from ticketing_common.schemas import CamelModel


class UserRead(CamelModel):
    id: UUID
    email: str


class TicketRead(CamelModel):
    id: UUID
    title: str
    price: Decimal
    user_id: UUID
    version: int
    order_id: UUID | None = None


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


class OrderRead(CamelModel):
    id: UUID
    user_id: UUID
    status: OrderStatus
    expires_at: datetime
    version: int
    ticket: OrderTicketRead


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
