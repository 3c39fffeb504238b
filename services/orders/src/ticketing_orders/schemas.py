"""Orders' request and response bodies (camelCase JSON)."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

from pydantic import Field

from ticketing_common.admission import AdmissionCodes
from ticketing_common.errors import ErrorItem
from ticketing_common.events.contracts import CancelReason, OrderStatus
from ticketing_common.money import Price, from_cents
from ticketing_common.schemas import CamelModel
from ticketing_orders.models import Admission, Order


class OrderCreate(CamelModel):
    ticket_id: UUID
    # Strict: "2" or 2.0 is not a number of tickets. The most per order is a setting,
    # checked by the service.
    quantity: int = Field(default=1, ge=1, strict=True)


class OrderTicketRead(CamelModel):
    id: UUID
    title: str
    price: Price

    @classmethod
    def of(cls, order: Order) -> OrderTicketRead:
        """The order's ticket at the order's price (the price it was accepted at)."""
        ticket = order.ticket
        return cls(id=ticket.id, title=ticket.title, price=from_cents(order.price_cents))


class AdmissionRead(CamelModel):
    """A complete order's e-ticket: ``code`` is what its QR code encodes."""

    code: str
    checked_in_at: datetime | None


class OrderRead(CamelModel):
    id: UUID
    user_id: UUID
    status: OrderStatus
    expires_at: datetime
    version: int
    ticket: OrderTicketRead
    """The ticket at its unit price, as the order was accepted."""
    quantity: int
    """Units held (1 for a seat)."""
    total: Price
    """What the buyer pays: the unit price times ``quantity``."""
    cancel_reason: CancelReason | None
    """Why a cancelled order was cancelled; null for other statuses."""
    admission: AdmissionRead | None
    """Null unless the order is complete (so also once refunded or withdrawn)."""

    @classmethod
    def of(cls, order: Order, codes: AdmissionCodes) -> OrderRead:
        """The order with its ticket and admission, which the caller loaded (both are
        lazy=raise)."""
        issued = order.admission
        admits = order.status is OrderStatus.COMPLETE and issued is not None
        return cls(
            id=order.id,
            user_id=order.user_id,
            status=order.status,
            expires_at=order.expires_at,
            version=order.version,
            ticket=OrderTicketRead.of(order),
            quantity=order.quantity,
            total=from_cents(order.total_cents),
            cancel_reason=order.reason,
            admission=(
                AdmissionRead(
                    code=codes.issue(order_id=issued.order_id, ticket_id=issued.ticket_id),
                    checked_in_at=issued.checked_in_at,
                )
                if admits and issued is not None
                else None
            ),
        )


class CheckInCreate(CamelModel):
    code: str = Field(min_length=1, max_length=200)
    """What the e-ticket's QR code encodes."""


class CheckInRead(CamelModel):
    """The first scan of an admission: who was admitted, when, by whom."""

    order_id: UUID
    ticket: OrderTicketRead
    checked_in_at: datetime
    checked_in_by: str
    """The email of the seller who scanned it."""
    admits: int
    """How many people this one admission lets in (the order's quantity)."""

    @classmethod
    def of(cls, order: Order, admission: Admission) -> CheckInRead:
        assert admission.checked_in_at is not None
        assert admission.checked_in_by_email is not None
        return cls(
            order_id=order.id,
            ticket=OrderTicketRead.of(order),
            checked_in_at=admission.checked_in_at,
            checked_in_by=admission.checked_in_by_email,
            admits=order.quantity,
        )


class FirstAdmissionRead(CamelModel):
    checked_in_at: datetime
    checked_in_by: str


class AlreadyAdmittedBody(CamelModel):
    """409 to every scan after the first: the shared error shape plus the first admission."""

    errors: list[ErrorItem]
    admission: FirstAdmissionRead

    @classmethod
    def of(cls, admission: Admission) -> AlreadyAdmittedBody:
        assert admission.checked_in_at is not None
        assert admission.checked_in_by_email is not None
        at = admission.checked_in_at.astimezone(UTC).strftime("%H:%M:%S")
        return cls(
            errors=[
                ErrorItem(
                    message=f"Already admitted at {at} UTC by {admission.checked_in_by_email}"
                )
            ],
            admission=FirstAdmissionRead(
                checked_in_at=admission.checked_in_at,
                checked_in_by=admission.checked_in_by_email,
            ),
        )
