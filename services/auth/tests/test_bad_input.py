"""Bad input to sign-up and sign-in is a 400 in the shared shape, every field listed,
and writes nothing (SPEC §3)."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select

from ticketing_auth.models import SigninCounter, User
from ticketing_auth.passwords import Passwords
from ticketing_auth.repository import insert_user
from ticketing_common.db import Database

ROUTES = ["/api/users/signup", "/api/users/signin"]
GOOD_PASSWORD = "correct horse battery"


async def _nothing_written(db: Database) -> bool:
    async with db.transaction() as session:
        users = await session.scalar(select(func.count()).select_from(User))
        counters = await session.scalar(select(func.count()).select_from(SigninCounter))
    return users == 0 and counters == 0


def _fields(response: httpx.Response) -> list[str | None]:
    return [error.get("field") for error in response.json()["errors"]]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("body", "fields"),
    [
        pytest.param({}, ["email", "password"], id="both-missing"),
        pytest.param({"password": GOOD_PASSWORD}, ["email"], id="email-missing"),
        pytest.param({"email": "ann@example.com"}, ["password"], id="password-missing"),
        pytest.param({"email": 42, "password": GOOD_PASSWORD}, ["email"], id="email-number"),
        pytest.param({"email": None, "password": GOOD_PASSWORD}, ["email"], id="email-null"),
        pytest.param(
            {"email": ["ann@example.com"], "password": GOOD_PASSWORD}, ["email"], id="email-list"
        ),
        pytest.param({"email": "ann@example.com", "password": 12345678}, ["password"], id="pw-int"),
        pytest.param(
            {"email": "ann@example.com", "password": {"a": 1}}, ["password"], id="pw-object"
        ),
        pytest.param({"email": "not-an-email", "password": GOOD_PASSWORD}, ["email"], id="no-at"),
        pytest.param({"email": "ann@", "password": GOOD_PASSWORD}, ["email"], id="no-domain"),
        pytest.param({"email": "", "password": GOOD_PASSWORD}, ["email"], id="email-empty"),
        pytest.param({"email": "   ", "password": GOOD_PASSWORD}, ["email"], id="email-blank"),
        pytest.param(
            {"email": "Ann <ann@example.com>", "password": GOOD_PASSWORD},
            ["email"],
            id="email-with-display-name",
        ),
        pytest.param(
            {"email": "a@b@example.com", "password": GOOD_PASSWORD}, ["email"], id="two-ats"
        ),
        pytest.param(
            {"email": "ann\u0000@example.com", "password": GOOD_PASSWORD}, ["email"], id="nul"
        ),
        pytest.param(
            {"email": "ann@example.com\u0000", "password": GOOD_PASSWORD}, ["email"], id="end-nul"
        ),
        pytest.param(
            {"email": "ann@example.com\n", "password": GOOD_PASSWORD}, ["email"], id="newline"
        ),
        pytest.param(
            {"email": "a" * 250 + "@example.com", "password": GOOD_PASSWORD},
            ["email"],
            id="email-overlong",
        ),
        pytest.param(
            {"email": "a" * 10_000 + "@example.com", "password": GOOD_PASSWORD},
            ["email"],
            id="email-huge",
        ),
        pytest.param(
            {"email": "ann@example.com", "password": "x" * 129}, ["password"], id="pw-129"
        ),
        pytest.param(
            {"email": "ann@example.com", "password": "x" * 100_000}, ["password"], id="pw-huge"
        ),
        pytest.param({"email": "bad", "password": 1}, ["email", "password"], id="both-invalid"),
    ],
)
async def test_invalid_fields_get_400_listing_every_field(
    client: httpx.AsyncClient,
    db: Database,
    route: str,
    body: dict[str, object],
    fields: list[str],
) -> None:
    response = await client.post(route, json=body)

    assert response.status_code == 400
    assert _fields(response) == fields
    assert all(error["message"] for error in response.json()["errors"])
    assert "session" not in response.cookies
    assert await _nothing_written(db)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("content", "field"),
    [
        pytest.param(
            rb'{"email": "\ud800@example.com", "password": "correct horse"}',
            "email",
            id="email",
        ),
        pytest.param(
            rb'{"email": "ann@example.com", "password": "correct horse\ud800"}',
            "password",
            id="password",
        ),
    ],
)
async def test_lone_surrogate_escapes_get_400_not_500(
    client: httpx.AsyncClient, db: Database, route: str, content: bytes, field: str
) -> None:
    # Valid JSON, but not text that can be hashed or stored.
    response = await client.post(
        route, content=content, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert _fields(response) == [field]
    assert await _nothing_written(db)


@pytest.mark.parametrize(
    "password",
    ["correct\x00horse", "correct horse\n", "\tcorrect horse", "correct\x1bhorse"],
    ids=["nul", "newline", "tab", "escape"],
)
async def test_signup_with_a_control_character_in_the_password_gets_400(
    client: httpx.AsyncClient, db: Database, password: str
) -> None:
    response = await client.post(
        "/api/users/signup", json={"email": "ann@example.com", "password": password}
    )

    assert response.status_code == 400
    assert response.json() == {
        "errors": [{"message": "Must not contain control characters", "field": "password"}]
    }
    assert await _nothing_written(db)


async def test_a_password_with_a_control_character_chosen_before_the_rule_still_signs_in(
    client: httpx.AsyncClient, db: Database
) -> None:
    # Sign-in compares and never stores, so it does not refuse what sign-up now does.
    password = "pässwörd 🔑\x00x"
    async with db.transaction() as session:
        await insert_user(session, "ann@example.com", await Passwords().hash(password))

    right = await client.post(
        "/api/users/signin", json={"email": "ann@example.com", "password": password}
    )
    wrong = await client.post(
        "/api/users/signin", json={"email": "ann@example.com", "password": "pässwörd 🔑\x00y"}
    )

    assert (right.status_code, wrong.status_code) == (200, 401)


@pytest.mark.parametrize("password", ["", "1234567"])
async def test_signup_with_a_password_under_8_characters_gets_400(
    client: httpx.AsyncClient, db: Database, password: str
) -> None:
    response = await client.post(
        "/api/users/signup", json={"email": "ann@example.com", "password": password}
    )

    assert response.status_code == 400
    assert response.json() == {
        "errors": [
            {"message": "Password must be between 8 and 128 characters", "field": "password"}
        ]
    }
    assert await _nothing_written(db)


async def test_signin_with_a_short_password_is_just_invalid_credentials(
    client: httpx.AsyncClient,
) -> None:
    # Sign-in does not re-apply sign-up's length rule: a short password is simply wrong.
    response = await client.post(
        "/api/users/signin", json={"email": "ann@example.com", "password": "short"}
    )

    assert response.status_code == 401


async def test_signin_with_an_empty_password_gets_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/users/signin", json={"email": "ann@example.com", "password": ""}
    )

    assert response.status_code == 400
    assert _fields(response) == ["password"]


async def test_invalid_email_says_so(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/users/signup", json={"email": "nope", "password": GOOD_PASSWORD}
    )

    assert response.json() == {"errors": [{"message": "Email must be valid", "field": "email"}]}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(
    ("content", "headers"),
    [
        pytest.param(b'{"email": "ann@example.com", ', {}, id="truncated-json"),
        pytest.param(b"{'email': 'ann@example.com'}", {}, id="single-quotes"),
        pytest.param(b"", {}, id="empty-body"),
        pytest.param(b"null", {}, id="null"),
        pytest.param(b"[]", {}, id="array"),
        pytest.param(b'"ann@example.com"', {}, id="string"),
        pytest.param(b"42", {}, id="number"),
        pytest.param(b"\xff\xfe", {}, id="not-utf8"),
        pytest.param(
            b'{"email": "ann@example.com", "password": "correct horse"}',
            {"Content-Type": "text/plain"},
            id="text-plain",
        ),
        pytest.param(
            b"email=ann%40example.com&password=correct+horse",
            {"Content-Type": "application/x-www-form-urlencoded"},
            id="form-encoded",
        ),
    ],
)
async def test_malformed_body_gets_400_in_the_shared_shape(
    client: httpx.AsyncClient,
    db: Database,
    route: str,
    content: bytes,
    headers: dict[str, str],
) -> None:
    response = await client.post(
        route, content=content, headers={"Content-Type": "application/json", **headers}
    )

    assert response.status_code == 400
    errors = response.json()["errors"]
    assert errors
    assert all(set(error) <= {"message", "field"} and error["message"] for error in errors)
    assert await _nothing_written(db)


async def test_wrong_content_type_says_so(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/users/signup",
        content=b'{"email": "ann@example.com", "password": "correct horse"}',
        headers={"Content-Type": "text/plain"},
    )

    assert response.json() == {"errors": [{"message": "Content-Type must be application/json"}]}


async def test_malformed_json_says_so(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/users/signup", content=b"{", headers={"Content-Type": "application/json"}
    )

    assert response.json() == {"errors": [{"message": "Malformed JSON body"}]}


async def test_a_non_object_body_says_so(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/users/signup", json=["ann@example.com", "password"])

    assert response.json() == {"errors": [{"message": "Request body must be a JSON object"}]}


async def test_unknown_fields_are_ignored(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/users/signup",
        json={"email": "ann@example.com", "password": GOOD_PASSWORD, "admin": True},
    )

    assert response.status_code == 201
    assert set(response.json()) == {"id", "email"}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/users/signup"),
        ("GET", "/api/users/signin"),
        ("GET", "/api/users/signout"),
        ("POST", "/api/users/currentuser"),
    ],
)
async def test_wrong_method_gets_405_in_the_shared_shape(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path)

    assert response.status_code == 405
    assert response.json() == {"errors": [{"message": "Method not allowed"}]}


async def test_unknown_path_gets_404_in_the_shared_shape(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/users/nope")

    assert response.status_code == 404
    assert response.json() == {"errors": [{"message": "Not found"}]}
