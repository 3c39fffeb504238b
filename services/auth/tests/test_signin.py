"""POST /api/users/signin: signing in, without telling who has an account (SPEC §3)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx
from argon2 import PasswordHasher, extract_parameters
from sqlalchemy import select

from ticketing_auth.models import User
from ticketing_auth.passwords import Passwords
from ticketing_common.db import Database

ServeAuth = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
PASSWORD = "correct horse battery"
INVALID_CREDENTIALS = {"errors": [{"message": "Invalid credentials"}]}


async def _sign_up(client: httpx.AsyncClient, email: str = "ann@example.com") -> dict[str, str]:
    response = await client.post("/api/users/signup", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201
    client.cookies.clear()
    body: dict[str, str] = response.json()
    return body


async def test_signin_with_right_password_returns_200_with_the_user_and_a_cookie(
    client: httpx.AsyncClient,
) -> None:
    user = await _sign_up(client)

    response = await client.post(
        "/api/users/signin", json={"email": "ann@example.com", "password": PASSWORD}
    )

    assert response.status_code == 200
    assert response.json() == user
    assert "session" in response.cookies
    assert (await client.get("/api/users/currentuser")).json() == {"currentUser": user}


async def test_signin_email_is_trimmed_and_case_insensitive(client: httpx.AsyncClient) -> None:
    await _sign_up(client)

    response = await client.post(
        "/api/users/signin", json={"email": " ANN@example.com ", "password": PASSWORD}
    )

    assert response.status_code == 200


async def test_signin_with_wrong_password_gets_401_invalid_credentials(
    client: httpx.AsyncClient,
) -> None:
    await _sign_up(client)

    response = await client.post(
        "/api/users/signin", json={"email": "ann@example.com", "password": "wrong password"}
    )

    assert response.status_code == 401
    assert response.json() == INVALID_CREDENTIALS
    assert "session" not in response.cookies


async def test_signin_password_is_case_sensitive(client: httpx.AsyncClient) -> None:
    await _sign_up(client)

    response = await client.post(
        "/api/users/signin", json={"email": "ann@example.com", "password": PASSWORD.upper()}
    )

    assert response.status_code == 401


async def test_signin_with_unknown_email_gets_the_same_401_as_a_wrong_password(
    client: httpx.AsyncClient,
) -> None:
    await _sign_up(client)

    wrong_password = await client.post(
        "/api/users/signin", json={"email": "ann@example.com", "password": "wrong password"}
    )
    unknown_email = await client.post(
        "/api/users/signin", json={"email": "bob@example.com", "password": "wrong password"}
    )

    assert unknown_email.status_code == wrong_password.status_code == 401
    assert unknown_email.content == wrong_password.content
    varying = {"date", "x-request-id"}
    assert {k: v for k, v in unknown_email.headers.items() if k not in varying} == {
        k: v for k, v in wrong_password.headers.items() if k not in varying
    }


async def test_unknown_email_is_checked_against_a_hash_as_costly_as_a_real_one() -> None:
    # What makes an unknown email take as long as a wrong password.
    passwords = Passwords()
    real = await passwords.hash(PASSWORD)

    dummy = await passwords.dummy_hash()

    assert extract_parameters(dummy) == extract_parameters(real)
    assert not passwords.needs_rehash(dummy)
    assert not await passwords.verify(dummy, PASSWORD)
    assert await passwords.dummy_hash() == dummy  # made once


async def test_signin_upgrades_a_hash_made_with_older_parameters(
    client: httpx.AsyncClient, db: Database
) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
    async with db.transaction() as session:
        session.add(User(email="old@example.com", password_hash=weak.hash(PASSWORD)))

    response = await client.post(
        "/api/users/signin", json={"email": "old@example.com", "password": PASSWORD}
    )

    assert response.status_code == 200
    async with db.transaction() as session:
        stored = await session.scalar(select(User.password_hash))
    assert stored is not None
    assert extract_parameters(stored) == extract_parameters(PasswordHasher().hash("x"))
    assert PasswordHasher().verify(stored, PASSWORD)


async def test_signin_keeps_a_current_hash_unchanged(
    client: httpx.AsyncClient, db: Database
) -> None:
    await _sign_up(client)
    async with db.transaction() as session:
        before = await session.scalar(select(User.password_hash))

    await client.post("/api/users/signin", json={"email": "ann@example.com", "password": PASSWORD})

    async with db.transaction() as session:
        assert await session.scalar(select(User.password_hash)) == before


async def test_concurrent_signins_hold_one_pooled_connection_each(
    serve_auth: ServeAuth,
) -> None:
    # Counting an attempt uses its own connection before the request's session
    # takes one; holding one while waiting for another would starve a small pool.
    async with serve_auth(DATABASE_POOL_SIZE=1, SIGNIN_MAX_FAILURES_PER_EMAIL=20) as client:
        await _sign_up(client)
        responses = await asyncio.gather(
            *(
                client.post(
                    "/api/users/signin", json={"email": "ann@example.com", "password": PASSWORD}
                )
                for _ in range(6)
            )
        )

    assert [response.status_code for response in responses] == [200] * 6
