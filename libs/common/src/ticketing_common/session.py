"""Sessions: a signed JWT in the ``session`` cookie, verified by every service itself.

``CurrentUser`` is the optional user of a request; ``RequiredUser`` answers 401
when nobody is signed in. Both read the signing key from the app's settings, and
both refuse a session the app's revocation follower knows was revoked
(``ticketing_common.revocations``). :func:`read_token` also reads a token that
has expired, for those who renew tokens (auth) or ask for a renewal (the web client).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated
from uuid import UUID

import jwt
from fastapi import Depends, Request, Response
from pydantic import BaseModel, ConfigDict, EmailStr, ValidationError

from ticketing_common.errors import NotAuthorized
from ticketing_common.revocations import RevocationFollower
from ticketing_common.settings import ServiceSettings
from ticketing_common.state import components_of

COOKIE_NAME = "session"
ALGORITHM = "HS256"


class UserPayload(BaseModel):
    """Who is signed in, and in which session, as carried in the session token.

    ``sid`` names the session auth opened at sign-in; every token auth issues
    for that session (renewals included) carries it, and revoking it ends them all.
    """

    model_config = ConfigDict(frozen=True)

    id: UUID
    email: EmailStr
    sid: UUID


def issue_token(
    user: UserPayload, settings: ServiceSettings, *, expires_at: datetime | None = None
) -> str:
    """A token for ``user``; it expires at ``expires_at`` (auth records it with the
    session), by default ``SESSION_TOKEN_TTL_SECONDS`` from now."""
    now = datetime.now(UTC)
    claims = {
        "id": str(user.id),
        "email": user.email,
        "sid": str(user.sid),
        "iat": now,
        "exp": expires_at or now + timedelta(seconds=settings.SESSION_TOKEN_TTL_SECONDS),
    }
    return jwt.encode(claims, settings.JWT_KEY, algorithm=ALGORITHM)


@dataclass(frozen=True)
class SessionToken:
    """A token with a valid signature, expired or not, and when it was issued and expires."""

    user: UserPayload
    issued_at: datetime
    expires_at: datetime

    def expired(self, now: datetime | None = None) -> bool:
        return (now or datetime.now(UTC)) >= self.expires_at

    def past_half_life(self, now: datetime | None = None) -> bool:
        """Due for renewal: from the middle of its life on (so also once expired).

        Renewing only then costs one renewal per half-life, whatever the traffic,
        and a client that comes back before expiry is never signed out.
        """
        half_life = (self.expires_at - self.issued_at) / 2
        return (now or datetime.now(UTC)) >= self.issued_at + half_life


# Our tokens are a few hundred bytes. A longer cookie is read but not remembered, so
# that junk cookies (up to the gateway's 32 KiB of headers each) cannot fill the
# cache with megabytes.
MAX_CACHED_TOKEN_LENGTH = 1024


def read_token(token: str, settings: ServiceSettings) -> SessionToken | None:
    """The token's content if it was signed with our key, even when it has expired."""
    if len(token) > MAX_CACHED_TOKEN_LENGTH:
        return _decode(token, settings.JWT_KEY)
    return _read_signed(token, settings.JWT_KEY)


# A session's token comes with every request of its browser until it is renewed:
# checking its signature and validating its claims (the e-mail address) once per
# process, not per request, saves most of what authenticating a request costs. The
# result depends on nothing but the token and the key; expiry and revocation are
# checked at each use.
@functools.lru_cache(maxsize=4096)
def _read_signed(token: str, key: str) -> SessionToken | None:
    return _decode(token, key)


def _decode(token: str, key: str) -> SessionToken | None:
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            options={"require": ["exp", "iat", "sid"], "verify_exp": False},
        )
        return SessionToken(
            user=UserPayload.model_validate(claims),
            issued_at=datetime.fromtimestamp(claims["iat"], UTC),
            expires_at=datetime.fromtimestamp(claims["exp"], UTC),
        )
    except (jwt.InvalidTokenError, ValidationError, TypeError, ValueError, OverflowError):
        return None


def verify_token(token: str, settings: ServiceSettings) -> UserPayload | None:
    """The user of a valid, unexpired token; None for anything else."""
    read = read_token(token, settings)
    return read.user if read is not None and not read.expired() else None


def set_session_cookie(
    response: Response,
    user: UserPayload,
    settings: ServiceSettings,
    *,
    expires_at: datetime | None = None,
) -> None:
    response.set_cookie(
        COOKIE_NAME,
        issue_token(user, settings, expires_at=expires_at),
        max_age=settings.SESSION_TTL_SECONDS,
        httponly=True,
        samesite="lax",
        secure=settings.COOKIE_SECURE,
        path="/",
    )


def clear_session_cookie(response: Response, settings: ServiceSettings) -> None:
    response.delete_cookie(
        COOKIE_NAME, httponly=True, samesite="lax", secure=settings.COOKIE_SECURE, path="/"
    )


def settings_of(request: Request) -> ServiceSettings:
    return components_of(request.app).get(ServiceSettings)


def revocations_of(request: Request) -> RevocationFollower | None:
    """The revoked sessions the app follows; None for an app without (no bus)."""
    return components_of(request.app).find(RevocationFollower)


def current_user(request: Request) -> UserPayload | None:
    token = request.cookies.get(COOKIE_NAME)
    if not token:
        return None
    user = verify_token(token, settings_of(request))
    if user is None:
        return None
    revocations = revocations_of(request)
    if revocations is not None and revocations.is_revoked(user.sid):
        return None
    return user


# The dependencies are coroutines although they never wait: FastAPI runs a plain
# function dependency in a worker thread, a hand-off that costs more than the check.
async def _current_user_dependency(request: Request) -> UserPayload | None:
    return current_user(request)


async def required_user(
    user: Annotated[UserPayload | None, Depends(_current_user_dependency)],
) -> UserPayload:
    if user is None:
        raise NotAuthorized()
    return user


CurrentUser = Annotated[UserPayload | None, Depends(_current_user_dependency)]
RequiredUser = Annotated[UserPayload, Depends(required_user)]
