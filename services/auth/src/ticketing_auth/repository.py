"""All of auth's SQL: users, sessions, and the sign-in throttle counters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import ColumnElement, and_, case, delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing_auth.models import SigninCounter, User, UserSession


async def insert_user(session: AsyncSession, email: str, password_hash: str) -> User | None:
    """The new user, or None when the email is taken (also by a concurrent sign-up).

    ``ON CONFLICT DO NOTHING`` on the unique index of lower(email) resolves the
    race of two sign-ups with one address in the database: the second waits for
    the first to commit and then inserts nothing, instead of failing with an
    IntegrityError halfway through its transaction.
    """
    statement = (
        insert(User)
        .values(email=email, password_hash=password_hash)
        .on_conflict_do_nothing(index_elements=[func.lower(User.email)])
        .returning(User)
    )
    return (await session.scalars(statement)).one_or_none()


async def user_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(func.lower(User.email) == email.lower()))


async def set_password_hash(session: AsyncSession, user: User, password_hash: str) -> None:
    user.password_hash = password_hash
    await session.flush()


# -- sessions ----------------------------------------------------------------------------


def _live(now: datetime) -> ColumnElement[bool]:
    """A session that may still be used and renewed: not revoked, not ended."""
    return and_(UserSession.revoked_at.is_(None), UserSession.expires_at > now)


async def insert_session(
    session: AsyncSession, user_id: UUID, *, expires_at: datetime, token_expires_at: datetime
) -> UserSession:
    row = UserSession(user_id=user_id, expires_at=expires_at, token_expires_at=token_expires_at)
    session.add(row)
    await session.flush()
    return row


async def live_session(
    session: AsyncSession, session_id: UUID, user_id: UUID, now: datetime, *, for_update: bool
) -> UserSession | None:
    """The user's session if it is live; ``for_update`` locks it until the transaction ends.

    A renewal locks the row, so a concurrent revocation waits for it and then reads
    the token expiry it recorded (never one from before the renewal).
    """
    statement = select(UserSession).where(
        UserSession.id == session_id, UserSession.user_id == user_id, _live(now)
    )
    if for_update:
        statement = statement.with_for_update()
    return await session.scalar(statement)


async def revoke_sessions(
    session: AsyncSession, now: datetime, *, user_id: UUID, session_id: UUID | None = None
) -> list[UserSession]:
    """Revoke the user's live session ``session_id`` (or all of them); the ones revoked now.

    One conditional UPDATE: a session already revoked (by a concurrent sign-out)
    is not returned again, so its revocation is published once.
    """
    conditions = [UserSession.user_id == user_id, _live(now)]
    if session_id is not None:
        conditions.append(UserSession.id == session_id)
    revoked = await session.scalars(
        update(UserSession)
        .where(*conditions)
        .values(revoked_at=now)
        .returning(UserSession)
        # Rows already loaded (the caller's own session) take the values just written.
        .execution_options(populate_existing=True)
    )
    return list(revoked.all())


async def delete_spent_sessions(session: AsyncSession, now: datetime) -> int:
    """Delete sessions that can no longer be used: ended or revoked, and every token expired.

    A token of a deleted session is refused by auth (no live session) and, being
    expired, by every other service too.
    """
    deleted = await session.scalars(
        delete(UserSession)
        .where(
            UserSession.token_expires_at <= now,
            or_(UserSession.revoked_at.is_not(None), UserSession.expires_at <= now),
        )
        .returning(UserSession.id)
    )
    return len(deleted.all())


# -- sign-in throttle --------------------------------------------------------------------


@dataclass(frozen=True)
class Counter:
    """A throttle counter just after this attempt was added to it."""

    key: str
    failures: int
    window_started_at: datetime
    now: datetime  # the database's clock, shared by every replica


async def add_attempt(
    session: AsyncSession, keys: Sequence[str], window: timedelta
) -> list[Counter]:
    """Count one attempt against every key, starting a new window where the last one ended.

    One upsert is atomic per row, so concurrent attempts (in any replica) each
    get their own count. Rows are locked in sorted key order, so two attempts
    that share keys cannot deadlock.
    """
    expired = SigninCounter.window_started_at <= func.now() - window
    statement = (
        insert(SigninCounter)
        .values(
            [{"key": key, "failures": 1, "window_started_at": func.now()} for key in sorted(keys)]
        )
        .on_conflict_do_update(
            index_elements=[SigninCounter.key],
            # Both right-hand sides read the row as it was before this update.
            set_={
                "failures": case((expired, 1), else_=SigninCounter.failures + 1),
                "window_started_at": case(
                    (expired, func.now()), else_=SigninCounter.window_started_at
                ),
            },
        )
        .returning(
            SigninCounter.key,
            SigninCounter.failures,
            SigninCounter.window_started_at,
            func.now().label("now"),
        )
    )
    rows = (await session.execute(statement)).all()
    return [Counter(row.key, row.failures, row.window_started_at, row.now) for row in rows]


async def remove_attempt(session: AsyncSession, counters: Sequence[Counter]) -> None:
    """Take back one attempt from each counter, unless its window has moved on since.

    Keys are locked in the same sorted order as :func:`add_attempt` locks them.
    """
    for counter in sorted(counters, key=lambda counter: counter.key):
        await session.execute(
            update(SigninCounter)
            .where(
                SigninCounter.key == counter.key,
                SigninCounter.window_started_at == counter.window_started_at,
                SigninCounter.failures > 0,
            )
            .values(failures=SigninCounter.failures - 1)
        )


async def delete_expired_counters(session: AsyncSession, window: timedelta) -> int:
    """Delete counters whose window is over; an expired row would be reset on use anyway."""
    deleted = await session.scalars(
        delete(SigninCounter)
        .where(SigninCounter.window_started_at <= func.now() - window)
        .returning(SigninCounter.key)
    )
    return len(deleted.all())
