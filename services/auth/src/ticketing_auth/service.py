"""Auth's business rules: sign-up, sign-in, and sessions (open, renew, revoke).

Functions work in the caller's session and raise domain errors; the request
owns the transaction (it commits when the route returns, rolls back when it
raises). The sign-in throttle keeps its own counters; see ``throttle.py``.

Sessions (docs/sessions.md): a session row per sign-in; its tokens are short-lived
and renewed here while the session is live (not revoked, not ended). Revoking a
session records ``session:revoked`` in the outbox in the same transaction, so
every service hears of it exactly when it is committed; a sign-up records
``user:created`` the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing_auth import repository
from ticketing_auth.errors import EmailInUse, InvalidCredentials, SessionEnded
from ticketing_auth.models import User, UserSession
from ticketing_auth.passwords import Passwords
from ticketing_auth.schemas import SignIn, SignUp
from ticketing_auth.settings import SessionExpiry, Settings
from ticketing_auth.throttle import SigninThrottle
from ticketing_common.app import Worker, every
from ticketing_common.db import Database
from ticketing_common.events import outbox
from ticketing_common.events.contracts import SessionRevoked, UserCreated
from ticketing_common.session import SessionToken, UserPayload


async def sign_up(session: AsyncSession, passwords: Passwords, body: SignUp) -> User:
    password_hash = await passwords.hash(body.password)
    user = await repository.insert_user(session, body.email, password_hash)
    if user is None:
        raise EmailInUse(field="email")
    # In the sign-up's transaction: announced if and only if the account exists.
    await outbox.record(session, UserCreated(id=user.id, email=user.email))
    return user


async def sign_in(
    session: AsyncSession,
    passwords: Passwords,
    throttle: SigninThrottle,
    body: SignIn,
    *,
    client: str,
) -> User:
    attempt = await throttle.begin(body.email, client)
    user = await repository.user_by_email(session, body.email)
    # An unknown email is checked against a dummy hash, so it takes as long as
    # a wrong password: response time must not tell who has an account.
    password_hash = user.password_hash if user is not None else await passwords.dummy_hash()
    if not await passwords.verify(password_hash, body.password) or user is None:
        raise InvalidCredentials()  # the attempt stays counted as a failure
    await throttle.succeeded(session, attempt)
    if passwords.needs_rehash(user.password_hash):
        # Hashes made with older parameters are upgraded while the password is at hand.
        await repository.set_password_hash(session, user, await passwords.hash(body.password))
    return user


# -- sessions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedIn:
    """Who is signed in, in which session, and the expiry of the token to issue (if any)."""

    user: UserPayload
    # None: the visitor's token is fine as it is; else set a new one, expiring then.
    token_expires_at: datetime | None = None


def _now() -> datetime:
    return datetime.now(UTC)


def _token_expiry(now: datetime, session_end: datetime, settings: Settings) -> datetime:
    # No token outlives its session; whole seconds, as a JWT carries it (so the
    # expiry recorded and published is exactly the token's).
    expiry = min(now + timedelta(seconds=settings.SESSION_TOKEN_TTL_SECONDS), session_end)
    return expiry.replace(microsecond=0)


async def open_session(session: AsyncSession, user: User, settings: Settings) -> SignedIn:
    """A new session for a user who just signed up or in, and its first token."""
    now = _now()
    end = now + timedelta(seconds=settings.SESSION_TTL_SECONDS)
    token_expires_at = _token_expiry(now, end, settings)
    row = await repository.insert_session(
        session, user.id, expires_at=end, token_expires_at=token_expires_at
    )
    return SignedIn(UserPayload(id=user.id, email=user.email, sid=row.id), token_expires_at)


async def renew_session(
    session: AsyncSession, token: SessionToken | None, settings: Settings
) -> SignedIn:
    """A fresh token for a live session, whether the given one expired or not.

    The token must carry our signature; its session must be neither revoked nor
    ended (SessionEnded otherwise). With idle expiry the session's end moves on too.
    """
    if token is None:
        raise SessionEnded()
    now = _now()
    row = await repository.live_session(
        session, token.user.sid, token.user.id, now, for_update=True
    )
    if row is None:
        raise SessionEnded()
    if settings.SESSION_EXPIRY is SessionExpiry.IDLE:
        row.expires_at = now + timedelta(seconds=settings.SESSION_TTL_SECONDS)
    token_expires_at = _token_expiry(now, row.expires_at, settings)
    # Never lowered: an earlier token may expire later (a shorter TTL since).
    row.token_expires_at = max(row.token_expires_at, token_expires_at)
    await session.flush()
    return SignedIn(token.user, token_expires_at)


async def current_session(
    session: AsyncSession, token: SessionToken | None, settings: Settings
) -> SignedIn | None:
    """The signed-in user if the token's session is live, renewed once past half-life."""
    if token is None:
        return None
    if token.past_half_life():
        try:
            return await renew_session(session, token, settings)
        except SessionEnded:
            return None
    row = await repository.live_session(
        session, token.user.sid, token.user.id, _now(), for_update=False
    )
    return SignedIn(token.user) if row is not None else None


async def sign_out(session: AsyncSession, token: SessionToken | None) -> None:
    """Revoke the token's session, if it is live (a repeated sign-out changes nothing)."""
    if token is None:
        return
    revoked = await repository.revoke_sessions(
        session, _now(), user_id=token.user.id, session_id=token.user.sid
    )
    await _publish_revocations(session, revoked)


async def sign_out_everywhere(session: AsyncSession, token: SessionToken | None) -> int:
    """Revoke every live session of the token's user; how many were revoked.

    Only a live session may do it (SessionEnded otherwise): a token of a revoked
    session must not sign its owner out of the sessions they still use.
    """
    now = _now()
    if token is None or (
        await repository.live_session(session, token.user.sid, token.user.id, now, for_update=False)
        is None
    ):
        raise SessionEnded()
    revoked = await repository.revoke_sessions(session, now, user_id=token.user.id)
    await _publish_revocations(session, revoked)
    return len(revoked)


async def _publish_revocations(session: AsyncSession, revoked: Sequence[UserSession]) -> None:
    for row in revoked:
        await outbox.record(
            session,
            SessionRevoked(id=row.id, user_id=row.user_id, expires_at=row.token_expires_at),
        )


def session_pruner(database: Database, settings: Settings) -> Worker:
    """Background housekeeping: delete spent sessions every ``SESSION_PRUNE_SECONDS``.

    Every replica may run it: deleting a spent row twice is harmless.
    """

    async def prune() -> int:
        async with database.transaction() as session:
            return await repository.delete_spent_sessions(session, _now())

    return every(settings.SESSION_PRUNE_SECONDS, prune)
