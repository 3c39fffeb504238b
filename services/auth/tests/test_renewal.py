"""POST /api/users/session/renew: a fresh token for a live session, expired token or not;
refused for revoked, ended, unknown and forged sessions (docs/sessions.md)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta

import httpx
import jwt

from ticketing_auth.models import UserSession
from ticketing_auth.settings import Settings
from ticketing_common.db import Database
from ticketing_common.events.contracts import SessionRevoked
from ticketing_common.session import ALGORITHM, verify_token
from ticketing_common.testing import signed_in_cookie, wait_until

from .conftest import EventsOf
from .test_session import read, sign_in, sign_up

ServeAuth = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
SESSION_ENDED = {"errors": [{"message": "Session ended, please sign in again"}]}


async def renew(client: httpx.AsyncClient, token: str | None) -> httpx.Response:
    client.cookies.clear()
    if token is not None:
        client.cookies.set("session", token)
    return await client.post("/api/users/session/renew")


async def session_row(db: Database, token: str, settings: Settings) -> UserSession:
    async with db.transaction() as session:
        row = await session.get(UserSession, read(token, settings).user.sid)
    assert row is not None
    return row


async def test_an_expired_token_of_a_live_session_is_renewed_in_the_same_session(
    serve_auth: ServeAuth, settings: Settings, db: Database
) -> None:
    async with serve_auth(SESSION_TOKEN_TTL_SECONDS=1) as client:
        old = await sign_up(client)
        await wait_until(read(old, settings).expired)
        assert verify_token(old, settings) is None

        response = await renew(client, old)

    assert response.status_code == 200
    new = response.cookies["session"]
    user = verify_token(new, settings)
    assert user == read(old, settings).user
    assert response.json() == {"id": str(user.id), "email": user.email}
    assert (await session_row(db, new, settings)).token_expires_at == read(new, settings).expires_at


async def test_a_renewed_token_keeps_the_session_signed_in_for_currentuser(
    serve_auth: ServeAuth, settings: Settings
) -> None:
    async with serve_auth(SESSION_TOKEN_TTL_SECONDS=1) as client:
        old = await sign_up(client)
        await wait_until(read(old, settings).expired)
        new = (await renew(client, old)).cookies["session"]
        client.cookies.set("session", new)

        current = await client.get("/api/users/currentuser")

    assert current.json()["currentUser"]["email"] == "ann@example.com"


async def test_renewal_is_refused_without_a_token_and_for_forged_or_unknown_sessions(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    claims = read(await sign_up(client), settings)
    now = datetime.now(UTC)
    other_key = jwt.encode(
        {
            "id": str(claims.user.id),
            "email": claims.user.email,
            "sid": str(claims.user.sid),
            "iat": now,
            "exp": now + timedelta(minutes=5),
        },
        "some-other-key-long-enough-for-hs256",
        algorithm=ALGORITHM,
    )
    never_opened = signed_in_cookie(settings, user_id=claims.user.id)["session"]

    for token in (None, "not-a-jwt", other_key, never_opened):
        response = await renew(client, token)
        assert (response.status_code, response.json()) == (401, SESSION_ENDED), token
        assert "session" not in response.cookies


async def test_a_session_past_its_end_is_not_renewed(
    serve_auth: ServeAuth, settings: Settings, db: Database
) -> None:
    async with serve_auth(SESSION_TTL_SECONDS=1) as client:
        token = await sign_up(client)
        # No token outlives its session.
        end = (await session_row(db, token, settings)).expires_at
        assert read(token, settings).expires_at <= end
        await wait_until(lambda: datetime.now(UTC) > end)

        response = await renew(client, token)

    assert response.status_code == 401


async def test_renewal_moves_an_idle_session_end_but_not_an_absolute_one(
    serve_auth: ServeAuth, settings: Settings, db: Database
) -> None:
    for expiry, moves in (("absolute", False), ("idle", True)):
        async with serve_auth(SESSION_EXPIRY=expiry) as client:
            token = await sign_up(client, f"{expiry}@example.com")
            before = await session_row(db, token, settings)
            await asyncio.sleep(0.01)  # so that "now" differs
            assert (await renew(client, token)).status_code == 200
            after = await session_row(db, token, settings)

        assert (after.expires_at > before.expires_at) is moves, expiry


async def test_renewal_is_refused_after_signout_everywhere_but_other_users_renew(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    ann = [await sign_up(client), await sign_in(client)]
    bob = await sign_up(client, "bob@example.com")
    client.cookies.set("session", ann[0])
    assert (await client.post("/api/users/signout/everywhere")).status_code == 200

    for token in ann:
        assert (await renew(client, token)).status_code == 401
    assert (await renew(client, bob)).status_code == 200


async def test_a_revocation_racing_renewals_publishes_an_expiry_no_renewed_token_outlives(
    serve_auth: ServeAuth, settings: Settings, events_of: EventsOf
) -> None:
    """A renewal locks its session row, so a sign-out that races it waits and
    publishes the expiry of the token the renewal issued: services then remember the
    revocation as long as any token of the session can be used."""
    async with serve_auth(SESSION_TOKEN_TTL_SECONDS=60) as client:
        token = await sign_up(client)
        client.cookies.clear()
        await asyncio.sleep(1.1)  # renewed tokens expire a whole second later
        cookie = {"Cookie": f"session={token}"}

        async def renewal() -> httpx.Response:
            return await client.post("/api/users/session/renew", headers=cookie)

        async def sign_out() -> httpx.Response:
            return await client.post("/api/users/signout", headers=cookie)

        responses = await asyncio.gather(*[renewal() for _ in range(10)], sign_out())

    renewed = [read(r.cookies["session"], settings) for r in responses[:-1] if r.is_success]
    [event] = await wait_until(lambda: events_of(SessionRevoked))
    assert all(issued.expires_at <= event.data.expires_at for issued in renewed)
    assert responses[-1].status_code == 200
