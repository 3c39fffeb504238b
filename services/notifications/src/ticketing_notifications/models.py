"""Notifications' tables: replicas of what a mail needs to say, and the mails sent.

``users``, ``tickets`` and ``orders`` are copies of their owners' records, written
only by the listeners (tickets in their owner's version order). ``sent_mail`` holds
one row per event and kind of mail: the row is inserted in the transaction that
hands the mail to the SMTP server, so a redelivered event finds it and sends nothing.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from sqlalchemy import BigInteger, Boolean, DateTime, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from ticketing_common.db import ServiceBase


class Base(ServiceBase):
    """Notifications' declarative base."""


class User(Base):
    """Whom to write to: an account as auth announced it (user:created)."""

    __tablename__ = "users"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320))


class Ticket(Base):
    """A ticket as the tickets service last published it (applied in version order)."""

    __tablename__ = "tickets"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(255))
    price_cents: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[UUID]  # the seller
    withdrawn: Mapped[bool] = mapped_column(Boolean, server_default="false")


class Order(Base):
    """An order as it was made (order:created): who buys which ticket, at what price."""

    __tablename__ = "orders"

    id: Mapped[UUID] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[UUID]  # the buyer
    ticket_id: Mapped[UUID]
    price_cents: Mapped[int] = mapped_column(BigInteger)  # the unit price
    # Units of a general-admission listing (1 for a seat): the mails show the total.
    quantity: Mapped[int] = mapped_column(Integer, server_default="1")


class SentMail(Base):
    """One mail of one kind sent for one event: the key of exactly-once."""

    __tablename__ = "sent_mail"

    event_id: Mapped[UUID] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(64), primary_key=True)
    recipient: Mapped[str] = mapped_column(String(320))
    message_id: Mapped[str] = mapped_column(String(255))
    sent_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp()
    )
