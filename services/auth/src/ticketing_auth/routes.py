"""Auth's HTTP routes under ``/api/users`` (SPEC §3). Thin: parse, call the service, answer."""

from __future__ import annotations

from typing import Annotated
from uuid import uuid4

from fastapi import APIRouter, Depends, Request, Response, status

from ticketing_auth import service
from ticketing_auth.passwords import Passwords
from ticketing_auth.schemas import CurrentUserRead, SignIn, SignUp, UserRead
from ticketing_auth.settings import Settings
from ticketing_auth.throttle import AttemptLimits, SigninThrottle
from ticketing_common.db import DbSession
from ticketing_common.ratelimit import client_address
from ticketing_common.session import (
    CurrentUser,
    UserPayload,
    clear_session_cookie,
    set_session_cookie,
)
from ticketing_common.state import app_state

router = APIRouter(prefix="/api/users", tags=["users"])


def _settings(request: Request) -> Settings:
    return app_state(request, "settings", Settings)


def _passwords(request: Request) -> Passwords:
    return app_state(request, "passwords", Passwords)


def _throttle(request: Request) -> SigninThrottle:
    return app_state(request, "throttle", SigninThrottle)


def _attempt_limits(request: Request) -> AttemptLimits:
    return app_state(request, "attempt_limits", AttemptLimits)


def _client(request: Request, settings: Annotated[Settings, Depends(_settings)]) -> str:
    # The web client's pages vouch for their visitor with the shared key.
    return client_address(
        request, trust_proxy_headers=settings.TRUST_PROXY_HEADERS, vouching_key=settings.JWT_KEY
    )


AuthSettings = Annotated[Settings, Depends(_settings)]
PasswordsDep = Annotated[Passwords, Depends(_passwords)]
ThrottleDep = Annotated[SigninThrottle, Depends(_throttle)]
AttemptLimitsDep = Annotated[AttemptLimits, Depends(_attempt_limits)]
ClientAddress = Annotated[str, Depends(_client)]


# Route dependencies, so they run before the route's own work (the password hash).
# FastAPI parses the body once for both: the dependency and the route share ``body``.
async def _sign_up_allowed(body: SignUp, client: ClientAddress, limits: AttemptLimitsDep) -> None:
    await limits.sign_up(client=client, email=body.email)


async def _sign_in_allowed(body: SignIn, client: ClientAddress, limits: AttemptLimitsDep) -> None:
    await limits.sign_in(client=client, email=body.email)


@router.post(
    "/signup", status_code=status.HTTP_201_CREATED, dependencies=[Depends(_sign_up_allowed)]
)
async def sign_up(
    body: SignUp,
    response: Response,
    session: DbSession,
    passwords: PasswordsDep,
    settings: AuthSettings,
) -> UserRead:
    user = await service.sign_up(session, passwords, body)
    set_session_cookie(response, UserPayload(id=user.id, email=user.email, sid=uuid4()), settings)
    return UserRead.model_validate(user)


@router.post("/signin", dependencies=[Depends(_sign_in_allowed)])
async def sign_in(
    body: SignIn,
    response: Response,
    session: DbSession,
    passwords: PasswordsDep,
    throttle: ThrottleDep,
    client: ClientAddress,
    settings: AuthSettings,
) -> UserRead:
    user = await service.sign_in(session, passwords, throttle, body, client=client)
    set_session_cookie(response, UserPayload(id=user.id, email=user.email, sid=uuid4()), settings)
    return UserRead.model_validate(user)


@router.post("/signout")
async def sign_out(response: Response, settings: AuthSettings) -> dict[str, str]:
    clear_session_cookie(response, settings)
    return {}


@router.get("/currentuser")
async def current_user(user: CurrentUser) -> CurrentUserRead:
    return CurrentUserRead(
        current_user=UserRead(id=user.id, email=user.email) if user is not None else None
    )
