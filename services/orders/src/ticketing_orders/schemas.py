"""Orders' request and response bodies (camelCase JSON)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from ticketing_common.events.contracts import OrderStatus
from ticketing_common.money import Price, from_cents
from ticketing_common.schemas import CamelModel
from ticketing_orders.models import Order


class OrderCreate(CamelModel):
    ticket_id: UUID


class OrderTicketRead(CamelModel):
    id: UUID
    title: str
    price: Price

    @classmethod
    def of(cls, order: Order) -> OrderTicketRead:
        """The order's ticket at the order's price (the price it was accepted at)."""
        ticket = order.ticket
        return cls(id=ticket.id, title=ticket.title, price=from_cents(order.price_cents))


class OrderRead(CamelModel):
    id: UUID
    user_id: UUID
    status: OrderStatus
    expires_at: datetime
    version: int
    ticket: OrderTicketRead

    @classmethod
    def of(cls, order: Order) -> OrderRead:
        """The order with its ticket, which the caller loaded (``Order.ticket`` is lazy=raise)."""
        return cls(
            id=order.id,
            user_id=order.user_id,
            status=order.status,
            expires_at=order.expires_at,
            version=order.version,
            ticket=OrderTicketRead.of(order),
        )
