"""Tickets' tables: the tickets it owns, and the order references that lock them (a seat)
or are counted in them (a general-admission listing, docs/general-admission.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID, uuid4

from sqlalchemy import BigInteger, Boolean, DateTime, Index, Integer, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from ticketing_common.db import ServiceBase

TITLE_MAX_LENGTH = 200
# The most units one general-admission listing sells (docs/general-admission.md).
MAX_UNITS_PER_LISTING = 10_000


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
    # A general-admission listing: ``quantity`` interchangeable units, fixed when listed.
    # Orders decides which order holds which unit; here the units are only counted, from
    # the order events (``units_held``, ``units_sold``, ``sold_cents``: the sums of the
    # order refs' shares). A seat keeps quantity 1 and its counts at 0: its order_id and
    # sold_at say where it stands.
    general_admission: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    quantity: Mapped[int] = mapped_column(Integer, default=1, server_default=text("1"))
    units_held: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    units_sold: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # What the sold units fetched, each at its order's unit price (a listing's price may
    # change while units are held or sold).
    sold_cents: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))

    @property
    def units(self) -> Units:
        if self.withdrawn_at is not None:
            return Units(total=self.quantity, available=0, held=0, sold=0)
        if not self.general_admission:
            return Units(
                total=1,
                available=int(self.order_id is None),
                held=int(self.order_id is not None and self.sold_at is None),
                sold=int(self.sold_at is not None),
            )
        # Counts may be transiently stale (a refund's release arriving after the units'
        # next order), so more may be counted than listed: never show a negative.
        available = max(0, self.quantity - self.units_held - self.units_sold)
        return Units(self.quantity, available, self.units_held, self.units_sold)

    @property
    def revenue_cents(self) -> int:
        if self.general_admission:
            return self.sold_cents
        return self.price_cents if self.sold_at is not None else 0

    @property
    def status(self) -> TicketStatus:
        if self.withdrawn_at is not None:
            return TicketStatus.WITHDRAWN
        if self.general_admission:
            units = self.units
            if units.available > 0:
                return TicketStatus.FOR_SALE
            return TicketStatus.RESERVED if units.held > 0 else TicketStatus.SOLD
        if self.sold_at is not None:
            return TicketStatus.SOLD
        if self.order_id is not None:
            return TicketStatus.RESERVED
        return TicketStatus.FOR_SALE


@dataclass(frozen=True)
class Units:
    """A listing's units by where they stand; a seat is a listing of one."""

    total: int
    available: int
    held: int
    sold: int


# The list page: tickets for sale, newest first (id breaks ties of equal timestamps). A
# general-admission listing (never held as a whole: order_id stays NULL) while any of its
# units is available; for a seat that last condition always holds (counts 0, quantity 1).
FOR_SALE = (
    Ticket.order_id.is_(None)
    & Ticket.withdrawn_at.is_(None)
    & (Ticket.units_held + Ticket.units_sold < Ticket.quantity)
)
tickets_for_sale = Index(
    "ix_tickets_for_sale", Ticket.created_at.desc(), Ticket.id.desc(), postgresql_where=FOR_SALE
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

    For an order of a general-admission listing it also keeps the order's share of
    the listing's counts (units held, units sold and what they fetched): each event
    moves the share and the listing's counts together, so the counts are always the
    sum of the shares, and a cancellation returns exactly what its order had.
    """

    __tablename__ = "order_refs"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    ticket_id: Mapped[UUID] = mapped_column()
    units_held: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    units_sold: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    sold_cents: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
