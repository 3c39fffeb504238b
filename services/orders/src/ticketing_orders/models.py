"""Orders' tables: orders, their admissions, the replica of tickets that orders may
reserve, and the units of general-admission listings.

The ``tickets`` rows (``TicketReplica``) are a copy of the tickets service's records
(same id and version), written only by the ticket:created / ticket:updated /
ticket:withdrawn listeners. A general-admission listing also gets one ``ticket_units``
row per unit when it is first replicated (docs/general-admission.md). An
``admissions`` row is what a complete order's e-ticket lets in at the door
(docs/after-purchase.md).
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Text,
    false,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ticketing_common.db import ServiceBase, stored_by_value
from ticketing_common.events.contracts import CancelReason, OrderStatus

# Statuses in which an order keeps its ticket from every other buyer.
HOLDING_STATUSES = tuple(status.value for status in OrderStatus if status.holds_ticket)
# As literal SQL, not bound parameters: PostgreSQL matches an ON CONFLICT target to
# the partial index by its predicate, which a parameter (in a prepared statement's
# generic plan) cannot prove. The values are our own constants.
# General-admission orders stay out: many of them hold units of one listing.
HOLDING_PREDICATE = text(
    "status IN ("
    + ", ".join(f"'{status}'" for status in HOLDING_STATUSES)
    + ") AND NOT general_admission"
)


class Base(ServiceBase):
    """Orders' declarative base."""


class TicketReplica(Base):
    """A ticket as the tickets service last published it (applied in version order)."""

    __tablename__ = "tickets"

    id: Mapped[UUID] = mapped_column(primary_key=True)  # the tickets service's id
    title: Mapped[str] = mapped_column(Text)
    price_cents: Mapped[int] = mapped_column(BigInteger)
    seller_id: Mapped[UUID]
    version: Mapped[int] = mapped_column(Integer)
    # Taken off sale for good by its seller (ticket:withdrawn): no new order may hold it.
    withdrawn: Mapped[bool] = mapped_column(Boolean, server_default=false())
    # ``quantity`` interchangeable units at one price (their rows are ``ticket_units``);
    # a seat is one unit decided by the orders' reservation index instead.
    general_admission: Mapped[bool] = mapped_column(Boolean, server_default=false())
    quantity: Mapped[int] = mapped_column(Integer, server_default="1")


class TicketUnit(Base):
    """One unit of a general-admission listing, free (``order_id`` null) or held by an
    order (created, awaiting payment or complete). Claimed and released only with the
    order's own transitions (docs/concurrency.md, rule 21)."""

    __tablename__ = "ticket_units"

    ticket_id: Mapped[UUID] = mapped_column(ForeignKey("tickets.id"), primary_key=True)
    unit: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Deferred: a buyer claims units under the new order's id before inserting it, so
    # a buyer who finds too few free units never writes an order.
    order_id: Mapped[UUID | None] = mapped_column(
        ForeignKey("orders.id", deferrable=True, initially="DEFERRED"), index=True
    )


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    user_id: Mapped[UUID]  # the buyer
    status: Mapped[OrderStatus] = mapped_column(stored_by_value(OrderStatus))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ticket_id: Mapped[UUID] = mapped_column(ForeignKey("tickets.id"))
    # The price the order was accepted at: what order:created carries and the buyer pays,
    # even if a seller's edit reaches the replica later.
    price_cents: Mapped[int] = mapped_column(BigInteger)
    # An order of a general-admission listing holds ``quantity`` of its ``ticket_units``;
    # an order of a seat holds the seat (quantity 1).
    general_admission: Mapped[bool] = mapped_column(Boolean, server_default=false())
    quantity: Mapped[int] = mapped_column(Integer, server_default="1")
    version: Mapped[int] = mapped_column(Integer, default=0)
    # When the order was cancelled (by its buyer or by its expiry): the buyer's cool-down
    # before ordering the same ticket again counts from it. Null for other statuses.
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Why it was cancelled (what its order:cancelled said). Null for other statuses, and
    # for orders cancelled before reasons were kept (they read as ``cancelled``).
    cancel_reason: Mapped[CancelReason | None] = mapped_column(stored_by_value(CancelReason))
    # clock_timestamp, not now(): orders of one transaction-start instant still sort.
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp()
    )

    ticket: Mapped[TicketReplica] = relationship(lazy="raise")
    admission: Mapped[Admission | None] = relationship(lazy="raise", viewonly=True)

    @property
    def total_cents(self) -> int:
        """What the buyer pays: the unit price times the units."""
        return self.price_cents * self.quantity

    @property
    def reason(self) -> CancelReason | None:
        """Why a cancelled order was cancelled (``cancelled`` when it was not recorded)."""
        if self.status is not OrderStatus.CANCELLED:
            return None
        return self.cancel_reason or CancelReason.CANCELLED


class Admission(Base):
    """What a complete order's e-ticket admits at the door, once.

    Issued in the transaction that completes the order. Checked in at most once, and
    voided (never deleted) when the order is refunded or withdrawn; a voided admission
    never checks in. Every change is one conditional UPDATE of this row, so its row
    lock decides between two gates, or a gate and a refund (docs/concurrency.md).
    """

    __tablename__ = "admissions"

    order_id: Mapped[UUID] = mapped_column(ForeignKey("orders.id"), primary_key=True)
    ticket_id: Mapped[UUID]
    # When the order was paid (the refund period counts from it).
    issued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    checked_in_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    checked_in_by: Mapped[UUID | None]  # the seller who scanned it
    checked_in_by_email: Mapped[str | None] = mapped_column(Text)
    voided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# The reservation lock. Of any number of concurrent orders for one ticket, only
# one can hold it: the database, not a check-then-insert, decides the race
# between two buyers who both saw the ticket free.
orders_ticket_reserved = Index(
    "uq_orders_ticket_id_reserving",
    Order.ticket_id,
    unique=True,
    postgresql_where=HOLDING_PREDICATE,
)
# Where a buyer looks for free units: only free ones are in it.
free_units = Index(
    "ix_ticket_units_free",
    TicketUnit.ticket_id,
    TicketUnit.unit,
    postgresql_where=TicketUnit.order_id.is_(None),
)
orders_by_user = Index("ix_orders_user_id_created_at", Order.user_id, Order.created_at)
