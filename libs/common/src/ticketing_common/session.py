"""Sessions: a signed JWT in the ``session`` cookie, verified by every service itself.

``CurrentUser`` is the optional user of a request; ``RequiredUser`` answers 401
when nobody is signed in. Both read the signing key from the app's settings, and
both refuse a session the app's revocation follower knows was revoked
(``ticketing_common.revocations``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated
from uuid import UUID

import jwt
from fastapi import Depends, Request, Response
from pydantic import BaseModel, ConfigDict, EmailStr, ValidationError

from ticketing_common.app import ServiceRuntime
from ticketing_common.errors import NotAuthorized
from ticketing_common.revocations import RevocationFollower
from ticketing_common.settings import ServiceSettings
from ticketing_common.state import app_state

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


def issue_token(user: UserPayload, settings: ServiceSettings) -> str:
    now = datetime.now(UTC)
    claims = {
        "id": str(user.id),
        "email": user.email,
        "sid": str(user.sid),
        "iat": now,
        "exp": now + timedelta(seconds=settings.SESSION_TOKEN_TTL_SECONDS),
    }
    return jwt.encode(claims, settings.JWT_KEY, algorithm=ALGORITHM)


def verify_token(token: str, settings: ServiceSettings) -> UserPayload | None:
    """The user of a valid, unexpired token; None for anything else."""
    try:
        claims = jwt.decode(
            token, settings.JWT_KEY, algorithms=[ALGORITHM], options={"require": ["exp", "sid"]}
        )
        return UserPayload.model_validate(claims)
    except (jwt.InvalidTokenError, ValidationError):
        return None


def set_session_cookie(response: Response, user: UserPayload, settings: ServiceSettings) -> None:
    response.set_cookie(
        COOKIE_NAME,
        issue_token(user, settings),
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
    return app_state(request, "settings", ServiceSettings)


def revocations_of(request: Request) -> RevocationFollower | None:
    """The revoked sessions the app follows; None for an app without (no bus)."""
    runtime = getattr(request.app.state, "runtime", None)
    return runtime.revocations if isinstance(runtime, ServiceRuntime) else None


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


def required_user(user: Annotated[UserPayload | None, Depends(current_user)]) -> UserPayload:
    if user is None:
        raise NotAuthorized()
    return user


CurrentUser = Annotated[UserPayload | None, Depends(current_user)]
RequiredUser = Annotated[UserPayload, Depends(required_user)]
