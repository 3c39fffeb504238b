"""All of auth's SQL: users, and the sign-in throttle counters."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing_auth.models import SigninCounter, User


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
