"""Payments' tables: the replica of orders, and the payments taken for them.

The ``orders`` rows are a copy of the orders service's records (same id and
version), written only by the order:created / order:cancelled listeners. A
payment exists only for a charge that succeeded; ``order_id`` is unique, so an
order is recorded as paid at most once.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from uuid import UUID, uuid4

from sqlalchemy import BigInteger, DateTime, ForeignKey, Integer, String, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ticketing_common.db import new_metadata


class PaymentStatus(StrEnum):
    SUCCEEDED = "succeeded"
    REFUNDED = "refunded"


class Base(DeclarativeBase):
    """Payments' own declarative base: its own metadata and registry, shared with no service."""

    metadata = new_metadata()


class Order(Base):
    """An order as the orders service last published it (applied in version order)."""

    __tablename__ = "orders"

    id: Mapped[UUID] = mapped_column(primary_key=True)  # the orders service's id
    version: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[UUID]  # the buyer
    status: Mapped[str] = mapped_column(String(32))  # an OrderStatus value
    price_cents: Mapped[int] = mapped_column(BigInteger)  # what the buyer pays
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Payment(Base):
    __tablename__ = "payments"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    # Unique: of any number of requests that saw the charge succeed, one records it.
    order_id: Mapped[UUID] = mapped_column(ForeignKey("orders.id"), unique=True)
    stripe_id: Mapped[str] = mapped_column(String(255))  # the PaymentIntent id
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(32))  # a PaymentStatus value
    refund_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp()
    )
