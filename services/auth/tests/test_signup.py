"""POST /api/users/signup: creating an account (SPEC §3)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pytest
from argon2 import PasswordHasher, Type, extract_parameters
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from ticketing_auth.models import User
from ticketing_common.db import Database
from ticketing_common.events.contracts import UserCreated
from ticketing_common.events.outbox import outbox_table
from ticketing_common.testing import wait_until

from .conftest import EventsOf

ServeAuth = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
PASSWORD = "correct horse battery"


async def _users(db: Database) -> list[User]:
    async with db.transaction() as session:
        return list(await session.scalars(select(User)))


async def _outbox_drained(db: Database) -> bool:
    """True once the relay has published every recorded event."""
    async with db.transaction() as session:
        return (await session.scalar(select(func.count()).select_from(outbox_table))) == 0


def _session_cookie_header(response: httpx.Response) -> str:
    (header,) = [h for h in response.headers.get_list("set-cookie") if h.startswith("session=")]
    return header


async def test_signup_returns_201_with_id_and_email_and_stores_the_user(
    client: httpx.AsyncClient, db: Database
) -> None:
    response = await client.post(
        "/api/users/signup", json={"email": "ann@example.com", "password": PASSWORD}
    )

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "email"}
    assert body["email"] == "ann@example.com"
    [user] = await _users(db)
    assert str(user.id) == body["id"]


async def test_signup_signs_the_new_user_in(client: httpx.AsyncClient) -> None:
    created = await client.post(
        "/api/users/signup", json={"email": "ann@example.com", "password": PASSWORD}
    )

    assert "session" in created.cookies
    current = await client.get("/api/users/currentuser")
    assert current.json() == {"currentUser": created.json()}


async def test_signup_trims_and_lowercases_the_email(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/users/signup", json={"email": "  Ann.Lee@Example.COM ", "password": PASSWORD}
    )

    assert response.status_code == 201
    assert response.json()["email"] == "ann.lee@example.com"


async def test_signup_with_used_email_gets_409(client: httpx.AsyncClient, db: Database) -> None:
    first = await client.post(
        "/api/users/signup", json={"email": "ann@example.com", "password": PASSWORD}
    )
    second = await client.post(
        "/api/users/signup", json={"email": "ann@example.com", "password": "another password"}
    )

    assert first.status_code == 201
    assert second.status_code == 409
    assert second.json() == {"errors": [{"message": "Email in use", "field": "email"}]}
    assert "session" not in second.cookies
    assert len(await _users(db)) == 1


async def test_signup_with_used_email_in_other_case_gets_409(client: httpx.AsyncClient) -> None:
    await client.post("/api/users/signup", json={"email": "ann@example.com", "password": PASSWORD})

    again = await client.post(
        "/api/users/signup", json={"email": "ANN@Example.com", "password": PASSWORD}
    )

    assert again.status_code == 409


async def test_concurrent_signups_with_same_email_give_one_201_one_user_created_the_rest_409(
    serve_auth: ServeAuth, db: Database, events_of: EventsOf
) -> None:
    # Every request hashes before inserting, so they all reach the insert together.
    # The per-email sign-up limit is raised: the race under test is the database's.
    async with serve_auth(SIGNUP_RATE_PER_EMAIL="8/hour") as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    "/api/users/signup",
                    json={"email": "race@example.com", "password": f"password-{n}"},
                )
                for n in range(8)
            )
        )

        # The relay runs with the app: wait for it to publish before stopping it.
        await wait_until(lambda: _outbox_drained(db))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [201] + [409] * 7
    [user] = await _users(db)
    # Recorded in the sign-up's transaction: the 409s, rolled back, announce nothing.
    events = await events_of(UserCreated)
    assert [event.data for event in events] == [UserCreated(id=user.id, email="race@example.com")]


async def test_password_is_stored_as_an_argon2id_hash(
    client: httpx.AsyncClient, db: Database
) -> None:
    await client.post("/api/users/signup", json={"email": "ann@example.com", "password": PASSWORD})

    [user] = await _users(db)
    assert PASSWORD not in user.password_hash
    assert user.password_hash.startswith("$argon2id$")
    assert extract_parameters(user.password_hash).type is Type.ID
    assert PasswordHasher().verify(user.password_hash, PASSWORD)


async def test_signup_accepts_passwords_of_8_and_of_128_characters(
    client: httpx.AsyncClient,
) -> None:
    shortest = await client.post(
        "/api/users/signup", json={"email": "short@example.com", "password": "x" * 8}
    )
    longest = await client.post(
        "/api/users/signup", json={"email": "long@example.com", "password": "x" * 128}
    )

    assert (shortest.status_code, longest.status_code) == (201, 201)


async def test_signup_accepts_any_printable_unicode_password(client: httpx.AsyncClient) -> None:
    # Control characters are refused (test_bad_input); every other character is fine.
    password = "pässwörd 密码 🔑 « »"
    response = await client.post(
        "/api/users/signup", json={"email": "ann@example.com", "password": password}
    )
    signin = await client.post(
        "/api/users/signin", json={"email": "ann@example.com", "password": password}
    )

    assert (response.status_code, signin.status_code) == (201, 200)


async def test_session_cookie_is_httponly_samesite_lax_and_not_secure_on_http(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/api/users/signup", json={"email": "ann@example.com", "password": PASSWORD}
    )

    attributes = [part.strip().lower() for part in _session_cookie_header(response).split(";")]
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "path=/" in attributes
    assert "secure" not in attributes


async def test_session_cookie_is_secure_when_cookie_secure_is_set(serve_auth: ServeAuth) -> None:
    async with serve_auth(COOKIE_SECURE=True) as client:
        signup = await client.post(
            "/api/users/signup", json={"email": "ann@example.com", "password": PASSWORD}
        )
        signin = await client.post(
            "/api/users/signin", json={"email": "ann@example.com", "password": PASSWORD}
        )

    for response in (signup, signin):
        attributes = [part.strip().lower() for part in _session_cookie_header(response).split(";")]
        assert {"secure", "httponly", "samesite=lax"} <= set(attributes)


async def test_email_uniqueness_is_enforced_by_the_database_on_lower_email(db: Database) -> None:
    async with db.transaction() as session:
        session.add(User(email="ann@example.com", password_hash="x"))
    with pytest.raises(IntegrityError, match="uq_users_email_lower"):
        async with db.transaction() as session:
            session.add(User(email="ANN@example.com", password_hash="x"))
    async with db.transaction() as session:
        assert await session.scalar(select(func.count()).select_from(User)) == 1
