"""Auth's HTTP routes (SPEC §3, docs/sessions.md), mounted under the spec's prefix
``/api/users``. Thin: parse, call the service, answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from ticketing_auth import service
from ticketing_auth.passwords import Passwords
from ticketing_auth.schemas import CurrentUserRead, SignedOutEverywhere, SignIn, SignUp, UserRead
from ticketing_auth.service import SignedIn
from ticketing_auth.settings import Settings
from ticketing_auth.throttle import AttemptLimits, SigninThrottle
from ticketing_common.db import DbSession
from ticketing_common.ratelimit import client_address
from ticketing_common.session import (
    COOKIE_NAME,
    SessionToken,
    clear_session_cookie,
    read_token,
    set_session_cookie,
)
from ticketing_common.state import provided

router = APIRouter(tags=["users"])


AuthSettings = Annotated[Settings, Depends(provided(Settings))]
PasswordsDep = Annotated[Passwords, Depends(provided(Passwords))]
ThrottleDep = Annotated[SigninThrottle, Depends(provided(SigninThrottle))]
AttemptLimitsDep = Annotated[AttemptLimits, Depends(provided(AttemptLimits))]


async def _client(request: Request, settings: AuthSettings) -> str:  # async: no thread hop
    # The web client's pages vouch for their visitor with the shared key.
    return client_address(
        request, trust_proxy_headers=settings.TRUST_PROXY_HEADERS, vouching_key=settings.JWT_KEY
    )


async def _session_token(request: Request, settings: AuthSettings) -> SessionToken | None:
    """The cookie's token if we signed it, expired or not: whether its session is live
    is the service's question."""
    token = request.cookies.get(COOKIE_NAME)
    return read_token(token, settings) if token else None


ClientAddress = Annotated[str, Depends(_client)]
SessionTokenDep = Annotated[SessionToken | None, Depends(_session_token)]


def _issue(response: Response, signed_in: SignedIn, settings: Settings) -> None:
    """Set the session cookie when the service issued a new token."""
    if signed_in.token_expires_at is not None:
        set_session_cookie(
            response, signed_in.user, settings, expires_at=signed_in.token_expires_at
        )


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
    _issue(response, await service.open_session(session, user, settings), settings)
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
    _issue(response, await service.open_session(session, user, settings), settings)
    return UserRead.model_validate(user)


@router.post("/signout")
async def sign_out(
    response: Response, session: DbSession, token: SessionTokenDep, settings: AuthSettings
) -> dict[str, str]:
    await service.sign_out(session, token)
    clear_session_cookie(response, settings)
    return {}


@router.post("/signout/everywhere")
async def sign_out_everywhere(
    response: Response, session: DbSession, token: SessionTokenDep, settings: AuthSettings
) -> SignedOutEverywhere:
    revoked = await service.sign_out_everywhere(session, token)
    clear_session_cookie(response, settings)
    return SignedOutEverywhere(revoked_sessions=revoked)


@router.post("/session/renew")
async def renew_session(
    response: Response, session: DbSession, token: SessionTokenDep, settings: AuthSettings
) -> UserRead:
    signed_in = await service.renew_session(session, token, settings)
    _issue(response, signed_in, settings)
    return UserRead(id=signed_in.user.id, email=signed_in.user.email)


@router.get("/currentuser")
async def current_user(
    response: Response, session: DbSession, token: SessionTokenDep, settings: AuthSettings
) -> CurrentUserRead:
    signed_in = await service.current_session(session, token, settings)
    if signed_in is None:
        if token is not None:
            clear_session_cookie(response, settings)  # a session that ended for good
        return CurrentUserRead(current_user=None)
    _issue(response, signed_in, settings)
    return CurrentUserRead(current_user=UserRead(id=signed_in.user.id, email=signed_in.user.email))
