"""Payments' tables: the replica of orders, and the payments taken for them.

The ``orders`` rows are a copy of the orders service's records (same id and
version), written only by the order:created / order:cancelled listeners.

A ``payments`` row is written *before* the card is charged: the attempt
(``pending``, with the order's PaymentIntent and the confirmation's idempotency
key) is committed under the order's lock, then the intent is confirmed, then the
row is settled. A crash in between leaves a ``pending`` row, which the
reconciler settles by asking Stripe, so no charge is ever unknown to the
service. ``order_id`` is unique: one row, one intent, at most one charge per
order.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID, uuid4

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from ticketing_common.db import ServiceBase, stored_by_value
from ticketing_common.events.contracts import OrderStatus

# The status columns' width, as the migrations made them.


class PaymentStatus(StrEnum):
    # The card is being charged, or was when the process died: the outcome is Stripe's to tell.
    PENDING = "pending"
    # Charged and recorded; payment:created is in the outbox.
    SUCCEEDED = "succeeded"
    REFUNDED = "refunded"
    # The last attempt charged nothing (declined, ...); the order may be paid again.
    FAILED = "failed"
    # The order was cancelled and its intent cancelled at Stripe: it can never charge.
    VOIDED = "voided"


class Base(ServiceBase):
    """Payments' declarative base."""


class OrderReplica(Base):
    """An order as the orders service last published it (applied in version order)."""

    __tablename__ = "orders"

    id: Mapped[UUID] = mapped_column(primary_key=True)  # the orders service's id
    version: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[UUID]  # the buyer
    status: Mapped[OrderStatus] = mapped_column(stored_by_value(OrderStatus))
    price_cents: Mapped[int] = mapped_column(BigInteger)  # the unit price
    # Units of a general-admission listing the order holds (1 for a seat).
    quantity: Mapped[int] = mapped_column(Integer, server_default="1")
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    @property
    def amount_cents(self) -> int:
        """What the buyer pays: the unit price times the units."""
        return self.price_cents * self.quantity


class Payment(Base):
    """An order's payment: its attempts (one intent, retried with other cards) and outcome."""

    __tablename__ = "payments"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    # Unique: one row per order, claimed under the order's lock before any charge.
    order_id: Mapped[UUID] = mapped_column(ForeignKey("orders.id"), unique=True)
    stripe_id: Mapped[str] = mapped_column(String(255))  # the PaymentIntent id
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[PaymentStatus] = mapped_column(stored_by_value(PaymentStatus))
    refund_id: Mapped[str | None] = mapped_column(String(255))
    # The latest attempt's confirmation key (None on rows older than attempts).
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp()
    )
    # When the latest attempt began: a pending attempt older than the longest Stripe
    # call can no longer be in flight, so the reconciler may settle it.
    attempted_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp()
    )
