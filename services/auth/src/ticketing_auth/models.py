"""Auth's tables: users, and the counters of failed sign-ins (see ``throttle.py``)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy import DateTime, Index, Integer, String, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from ticketing_common.db import new_metadata

EMAIL_MAX_LENGTH = 254  # RFC 5321's limit on a forward path


class Base(DeclarativeBase):
    """Auth's own declarative base: its own metadata and registry, shared with no service."""

    metadata = new_metadata()


class User(Base):
    __tablename__ = "users"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    # Stored normalised to lower case; uniqueness is enforced on lower(email) below.
    email: Mapped[str] = mapped_column(String(EMAIL_MAX_LENGTH))
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# The database, not a check-then-insert, decides who gets an email: of two
# concurrent sign-ups with the same address only one can insert its row.
users_email_unique = Index("uq_users_email_lower", func.lower(User.email), unique=True)


class SigninCounter(Base):
    """One counter per throttle key (``email:…`` or ``client:…``) and fixed window."""

    __tablename__ = "signin_counters"

    key: Mapped[str] = mapped_column(String(320), primary_key=True)
    # Failed sign-ins in the window, plus attempts still being checked.
    failures: Mapped[int] = mapped_column(Integer)
    window_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
