"""Tickets' tables: the tickets it owns, and the order references that lock them."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID, uuid4

from sqlalchemy import BigInteger, DateTime, Index, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from ticketing_common.db import ServiceBase

TITLE_MAX_LENGTH = 200


class Base(ServiceBase):
    """Tickets' declarative base."""


class TicketStatus(StrEnum):
    """Where a listing stands, derived from its columns (docs/after-purchase.md)."""

    FOR_SALE = "for-sale"
    RESERVED = "reserved"
    SOLD = "sold"
    WITHDRAWN = "withdrawn"


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    title: Mapped[str] = mapped_column(String(TITLE_MAX_LENGTH))
    # Integer cents: exact, and what Stripe and the other services hold.
    price_cents: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[UUID] = mapped_column()
    # Incremented on every change that is published, so replicas apply changes in order.
    version: Mapped[int] = mapped_column(Integer, default=0)
    # The order holding the ticket; NULL while it is for sale.
    order_id: Mapped[UUID | None] = mapped_column(default=None)
    # When the holding order was paid (order:completed); cleared with order_id when that
    # order is cancelled after all (a refund), as the ticket is for sale again.
    sold_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    # When the seller withdrew it, for good; only a ticket nobody holds is withdrawn.
    withdrawn_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), default=None)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    @property
    def status(self) -> TicketStatus:
        if self.withdrawn_at is not None:
            return TicketStatus.WITHDRAWN
        if self.sold_at is not None:
            return TicketStatus.SOLD
        if self.order_id is not None:
            return TicketStatus.RESERVED
        return TicketStatus.FOR_SALE


# The list page: tickets for sale, newest first (id breaks ties of equal timestamps).
tickets_for_sale = Index(
    "ix_tickets_for_sale",
    Ticket.created_at.desc(),
    Ticket.id.desc(),
    postgresql_where=Ticket.order_id.is_(None) & Ticket.withdrawn_at.is_(None),
)

# A seller's listings, newest first.
tickets_of_seller = Index(
    "ix_tickets_of_seller", Ticket.user_id, Ticket.created_at.desc(), Ticket.id.desc()
)


class OrderRef(Base):
    """The last version seen of each order that ever referred to one of our tickets.

    Applied with ``apply_versioned``, it makes the order listeners idempotent and
    ordered: a redelivered order:created is a duplicate, and an order:cancelled
    that overtakes its order:created settles the ref at once (it is the order's
    final version), so the late created finds the order cancelled instead of
    locking the ticket for ever.
    """

    __tablename__ = "order_refs"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    ticket_id: Mapped[UUID] = mapped_column()
