"""Auth's tables: users, their sessions, and the counters of failed sign-ins (see
``throttle.py``)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID, uuid4

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, func
from sqlalchemy.orm import Mapped, mapped_column

from ticketing_common.db import ServiceBase

EMAIL_MAX_LENGTH = 254  # RFC 5321's limit on a forward path


class Base(ServiceBase):
    """Auth's declarative base."""


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


class UserSession(Base):
    """A signed-in session: opened at sign-in, renewed while it lives, revoked at sign-out.

    Every token auth issues for it carries its id (``sid``) and expires by
    ``token_expires_at``, which is at most ``expires_at``: after that the session can
    neither be renewed nor used, and the row can go.
    """

    __tablename__ = "sessions"

    id: Mapped[UUID] = mapped_column(primary_key=True, default=uuid4)
    user_id: Mapped[UUID] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # The session's end: sign-in + SESSION_TTL_SECONDS, or the last renewal + it
    # when SESSION_EXPIRY is idle.
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # The latest expiry of any token issued for the session: how long services
    # must remember its revocation.
    token_expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class SigninCounter(Base):
    """One counter per throttle key (``email:…`` or ``client:…``) and fixed window."""

    __tablename__ = "signin_counters"

    key: Mapped[str] = mapped_column(String(320), primary_key=True)
    # Failed sign-ins in the window, plus attempts still being checked.
    failures: Mapped[int] = mapped_column(Integer)
    window_started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
