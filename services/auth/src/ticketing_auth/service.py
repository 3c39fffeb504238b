"""Auth's business rules: sign-up and sign-in.

Functions work in the caller's session and raise domain errors; the request
owns the transaction (it commits when the route returns, rolls back when it
raises). The sign-in throttle keeps its own counters; see ``throttle.py``.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing_auth import repository
from ticketing_auth.errors import EmailInUse, InvalidCredentials
from ticketing_auth.models import User
from ticketing_auth.passwords import Passwords
from ticketing_auth.schemas import SignIn, SignUp
from ticketing_auth.throttle import SigninThrottle


async def sign_up(session: AsyncSession, passwords: Passwords, body: SignUp) -> User:
    password_hash = await passwords.hash(body.password)
    user = await repository.insert_user(session, body.email, password_hash)
    if user is None:
        raise EmailInUse(field="email")
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
