"""GET /api/users/currentuser and POST /api/users/signout (SPEC §3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import httpx
import jwt

from ticketing_auth.settings import Settings
from ticketing_common.session import ALGORITHM
from ticketing_common.testing import signed_in_cookie

PASSWORD = "correct horse battery"


async def test_currentuser_without_a_cookie_is_null(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/users/currentuser")

    assert response.status_code == 200
    assert response.json() == {"currentUser": None}


async def test_currentuser_with_a_valid_session_is_the_user(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    user_id = uuid4()
    cookies = signed_in_cookie(settings, user_id=user_id, email="ann@example.com")

    client.cookies.update(cookies)
    response = await client.get("/api/users/currentuser")

    assert response.json() == {"currentUser": {"id": str(user_id), "email": "ann@example.com"}}


async def test_currentuser_with_a_tampered_token_is_null(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    token = signed_in_cookie(settings, email="ann@example.com")["session"]
    header, payload, signature = token.split(".")
    forged_payload = jwt.utils.base64url_encode(
        f'{{"id": "{uuid4()}", "email": "admin@example.com", "exp": 9999999999}}'.encode()
    ).decode()

    for forged in (
        f"{header}.{forged_payload}.{signature}",
        f"{header}.{payload}.{signature[:-4]}AAAA",
        "not-a-jwt",
    ):
        client.cookies.set("session", forged)
        response = await client.get("/api/users/currentuser")
        assert response.json() == {"currentUser": None}, forged


async def test_currentuser_with_a_token_signed_by_another_key_is_null(
    client: httpx.AsyncClient,
) -> None:
    token = jwt.encode(
        {
            "id": str(uuid4()),
            "email": "ann@example.com",
            "exp": datetime.now(UTC) + timedelta(hours=1),
        },
        "some-other-key-long-enough-for-hs256",
        algorithm=ALGORITHM,
    )

    client.cookies.set("session", token)
    response = await client.get("/api/users/currentuser")

    assert response.json() == {"currentUser": None}


async def test_currentuser_with_an_expired_token_is_null(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    token = jwt.encode(
        {
            "id": str(uuid4()),
            "email": "ann@example.com",
            "exp": datetime.now(UTC) - timedelta(seconds=5),
        },
        settings.JWT_KEY,
        algorithm=ALGORITHM,
    )

    client.cookies.set("session", token)
    response = await client.get("/api/users/currentuser")

    assert response.json() == {"currentUser": None}


async def test_signout_returns_an_empty_object_and_clears_the_cookie(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/api/users/signup", json={"email": "ann@example.com", "password": PASSWORD})

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
