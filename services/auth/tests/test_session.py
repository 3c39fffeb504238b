"""Sessions (docs/sessions.md): one per sign-in, GET /api/users/currentuser answers from
it, POST /api/users/signout revokes it and publishes session:revoked."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import httpx
import jwt
from sqlalchemy import select

from ticketing_auth.models import UserSession
from ticketing_auth.settings import Settings
from ticketing_common.db import Database
from ticketing_common.events.contracts import SessionRevoked
from ticketing_common.session import ALGORITHM, SessionToken, read_token
from ticketing_common.testing import signed_in_cookie, wait_until

from .conftest import EventsOf

ServeAuth = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
PASSWORD = "correct horse battery"


async def sign_up(client: httpx.AsyncClient, email: str = "ann@example.com") -> str:
    """Sign up; the session token auth set."""
    response = await client.post("/api/users/signup", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    return response.cookies["session"]


async def sign_in(client: httpx.AsyncClient, email: str = "ann@example.com") -> str:
    response = await client.post("/api/users/signin", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.cookies["session"]


def read(token: str, settings: Settings) -> SessionToken:
    content = read_token(token, settings)
    assert content is not None
    return content


async def current_user(client: httpx.AsyncClient, token: str) -> object:
    client.cookies.set("session", token)
    return (await client.get("/api/users/currentuser")).json()["currentUser"]


# -- a session per sign-in ---------------------------------------------------------------


async def test_every_sign_up_and_sign_in_opens_its_own_session(
    client: httpx.AsyncClient, settings: Settings, db: Database
) -> None:
    tokens = [await sign_up(client), await sign_in(client), await sign_in(client)]

    sids = [read(token, settings).user.sid for token in tokens]
    assert len(set(sids)) == 3
    user_id = read(tokens[0], settings).user.id
    async with db.transaction() as session:
        rows = (await session.scalars(select(UserSession))).all()
    assert {row.id for row in rows} == set(sids)
    assert {row.user_id for row in rows} == {user_id}
    assert all(row.revoked_at is None for row in rows)


async def test_a_token_lives_the_token_ttl_and_the_cookie_the_session_ttl(
    client: httpx.AsyncClient, settings: Settings, db: Database
) -> None:
    response = await client.post(
        "/api/users/signup", json={"email": "ann@example.com", "password": PASSWORD}
    )

    token = read(response.cookies["session"], settings)
    assert token.expires_at - token.issued_at == timedelta(seconds=15 * 60)
    (cookie,) = [h for h in response.headers.get_list("set-cookie") if h.startswith("session=")]
    assert f"max-age={7 * 24 * 3600}" in cookie.lower()
    async with db.transaction() as session:
        row = await session.get(UserSession, token.user.sid)
    assert row is not None
    assert row.token_expires_at == token.expires_at
    assert row.expires_at - row.created_at >= timedelta(days=7) - timedelta(seconds=5)


# -- the current user --------------------------------------------------------------------


async def test_currentuser_without_a_cookie_is_null(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/users/currentuser")

    assert response.status_code == 200
    assert response.json() == {"currentUser": None}


async def test_currentuser_of_a_live_session_is_the_user_and_keeps_the_young_token(
    client: httpx.AsyncClient,
) -> None:
    await sign_up(client)

    response = await client.get("/api/users/currentuser")

    assert response.json()["currentUser"]["email"] == "ann@example.com"
    assert "session" not in response.cookies  # not past half-life: no renewal


async def test_currentuser_of_a_token_whose_session_auth_never_opened_is_null(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    assert await current_user(client, signed_in_cookie(settings)["session"]) is None


async def test_currentuser_with_a_tampered_token_is_null(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    token = await sign_up(client)
    header, payload, signature = token.split(".")
    forged_payload = jwt.utils.base64url_encode(
        f'{{"id": "{uuid4()}", "email": "admin@example.com", "exp": 9999999999}}'.encode()
    ).decode()

    for forged in (
        f"{header}.{forged_payload}.{signature}",
        f"{header}.{payload}.{signature[:-4]}AAAA",
        "not-a-jwt",
    ):
        assert await current_user(client, forged) is None, forged


async def test_currentuser_with_a_token_signed_by_another_key_is_null(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    claims = read(await sign_up(client), settings)
    now = datetime.now(UTC)
    token = jwt.encode(
        {
            "id": str(claims.user.id),
            "email": claims.user.email,
            "sid": str(claims.user.sid),
            "iat": now,
            "exp": now + timedelta(hours=1),
        },
        "some-other-key-long-enough-for-hs256",
        algorithm=ALGORITHM,
    )

    assert await current_user(client, token) is None


async def test_currentuser_renews_a_token_past_half_its_life_in_the_same_session(
    serve_auth: ServeAuth, settings: Settings
) -> None:
    async with serve_auth(SESSION_TOKEN_TTL_SECONDS=2) as client:
        old = read(await sign_up(client), settings)
        await wait_until(old.past_half_life)

        response = await client.get("/api/users/currentuser")

    assert response.json()["currentUser"] == {"id": str(old.user.id), "email": old.user.email}
    new = read(response.cookies["session"], settings)
    assert new.user == old.user  # same user, same session
    assert new.expires_at > old.expires_at


# -- sign-out ----------------------------------------------------------------------------


async def test_signout_returns_an_empty_object_and_clears_the_cookie(
    client: httpx.AsyncClient,
) -> None:
    await sign_up(client)

    response = await client.post("/api/users/signout")

    assert response.status_code == 200
    assert response.json() == {}
    [cleared] = [h for h in response.headers.get_list("set-cookie") if h.startswith("session=")]
    attributes = [part.strip().lower() for part in cleared.split(";")]
    assert 'session=""' in attributes or "session=" in attributes
    assert "max-age=0" in attributes
    assert {"httponly", "samesite=lax", "path=/"} <= set(attributes)
    assert (await client.get("/api/users/currentuser")).json() == {"currentUser": None}


async def test_signout_without_a_session_is_fine(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/users/signout")

    assert (response.status_code, response.json()) == (200, {})


async def test_signout_publishes_session_revoked_until_the_tokens_last_expiry(
    client: httpx.AsyncClient, settings: Settings, events_of: EventsOf
) -> None:
    token = read(await sign_up(client), settings)

    await client.post("/api/users/signout")

    [event] = await wait_until(lambda: events_of(SessionRevoked))
    assert event.data.id == token.user.sid
    assert event.data.user_id == token.user.id
    assert event.data.expires_at == token.expires_at


async def test_after_signout_auth_refuses_the_old_token(
    client: httpx.AsyncClient, settings: Settings, db: Database
) -> None:
    token = await sign_up(client)
    await client.post("/api/users/signout")

    assert await current_user(client, token) is None
    client.cookies.set("session", token)
    renewal = await client.post("/api/users/session/renew")
    assert renewal.status_code == 401
    async with db.transaction() as session:
        row = await session.get(UserSession, read(token, settings).user.sid)
    assert row is not None
    assert row.revoked_at is not None


async def test_signing_out_twice_with_one_token_revokes_once(
    client: httpx.AsyncClient, settings: Settings, events_of: EventsOf
) -> None:
    token = await sign_up(client)
    other = read(await sign_in(client), settings).user.sid  # a second session, untouched

    for _ in range(2):
        client.cookies.set("session", token)
        response = await client.post("/api/users/signout")
        assert (response.status_code, response.json()) == (200, {})

    [event] = await wait_until(lambda: events_of(SessionRevoked))
    assert event.data.id == read(token, settings).user.sid != other


async def test_signout_with_an_expired_token_still_revokes_its_session(
    serve_auth: ServeAuth, settings: Settings, events_of: EventsOf
) -> None:
    """An expired token could still be renewed, so signing out with it must end it."""
    async with serve_auth(SESSION_TOKEN_TTL_SECONDS=1) as client:
        raw = await sign_up(client)
        token = read(raw, settings)
        await wait_until(token.expired)
        client.cookies.set("session", raw)
        await client.post("/api/users/signout")
        client.cookies.set("session", raw)
        renewal = await client.post("/api/users/session/renew")

    assert renewal.status_code == 401
    [event] = await wait_until(lambda: events_of(SessionRevoked))
    assert event.data.id == token.user.sid


async def test_spent_sessions_are_pruned(
    serve_auth: ServeAuth, settings: Settings, db: Database
) -> None:
    async with serve_auth(SESSION_TTL_SECONDS=1, SESSION_PRUNE_SECONDS=0.2) as client:
        sid = read(await sign_up(client), settings).user.sid

        async def gone() -> bool:
            async with db.transaction() as session:
                return await session.get(UserSession, sid) is None

        await wait_until(gone)
