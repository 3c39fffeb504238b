"""Sessions: a signed JWT cookie every service verifies itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import httpx
import jwt
import pytest
from fastapi import APIRouter, FastAPI, Response
from pydantic import ValidationError

from ticketing_common import session
from ticketing_common.errors import install_error_handlers
from ticketing_common.session import (
    COOKIE_NAME,
    CurrentUser,
    RequiredUser,
    UserPayload,
    issue_token,
    read_token,
    set_session_cookie,
    verify_token,
)
from ticketing_common.settings import DEVELOPMENT_JWT_KEY, ServiceSettings
from ticketing_common.state import Components

SETTINGS = ServiceSettings(ENVIRONMENT="test", JWT_KEY="a-test-signing-key-of-at-least-32-bytes")
USER = UserPayload(id=uuid4(), email="buyer@example.com", sid=uuid4())

router = APIRouter()


@router.get("/me")
async def me(user: CurrentUser) -> dict[str, str | None]:
    return {"email": user.email if user else None}


@router.get("/private")
async def private(user: RequiredUser) -> dict[str, str]:
    return {"email": user.email}


@router.post("/signin")
async def signin(response: Response) -> dict[str, str]:
    set_session_cookie(response, USER, SETTINGS)
    return {}


def make_client() -> httpx.AsyncClient:
    app = FastAPI()
    app.state.components = Components([SETTINGS])
    install_error_handlers(app)
    app.include_router(router)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


def test_token_round_trips_the_user() -> None:
    assert verify_token(issue_token(USER, SETTINGS), SETTINGS) == USER


def test_token_signed_with_another_key_is_rejected() -> None:
    other = ServiceSettings(ENVIRONMENT="test", JWT_KEY="another-signing-key-of-at-least-32-bytes")
    assert verify_token(issue_token(USER, other), SETTINGS) is None


def test_expired_token_is_rejected() -> None:
    claims = {"id": str(USER.id), "email": USER.email, "exp": datetime.now(UTC) - timedelta(1)}
    token = jwt.encode(claims, SETTINGS.JWT_KEY, algorithm="HS256")
    assert verify_token(token, SETTINGS) is None


def test_token_without_expiry_is_rejected() -> None:
    token = jwt.encode({"id": str(USER.id), "email": USER.email}, SETTINGS.JWT_KEY)
    assert verify_token(token, SETTINGS) is None


def test_token_expires_when_told_and_is_read_even_after_it_did() -> None:
    expires_at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    token = issue_token(USER, SETTINGS, expires_at=expires_at)

    content = read_token(token, SETTINGS)

    assert verify_token(token, SETTINGS) is None
    assert content is not None
    assert (content.user, content.expires_at) == (USER, expires_at)
    assert content.expired()


def test_reading_a_token_still_checks_its_signature() -> None:
    forged = issue_token(USER, ServiceSettings(ENVIRONMENT="test", JWT_KEY="x" * 40))

    assert read_token(forged, SETTINGS) is None
    assert read_token("not-a-jwt", SETTINGS) is None


def test_a_token_is_due_for_renewal_from_the_middle_of_its_life() -> None:
    content = read_token(issue_token(USER, SETTINGS), SETTINGS)
    assert content is not None
    half = content.issued_at + (content.expires_at - content.issued_at) / 2

    assert not content.past_half_life(half - timedelta(seconds=1))
    assert content.past_half_life(half)
    assert content.past_half_life(content.expires_at + timedelta(hours=1))


def test_tokens_are_remembered_but_a_junk_cookie_of_any_length_is_not() -> None:
    remembered = session._read_signed.cache_info
    token = issue_token(USER, SETTINGS)
    assert len(token) <= session.MAX_CACHED_TOKEN_LENGTH
    assert verify_token(token, SETTINGS) == USER
    before = remembered()
    assert verify_token(token, SETTINGS) == USER
    assert remembered().hits == before.hits + 1  # checked once, then remembered

    junk = "x" * 30_000
    held = remembered().currsize
    assert read_token(junk, SETTINGS) is None
    assert read_token(junk + "y", SETTINGS) is None
    assert remembered().currsize == held


async def test_cookie_is_httponly_and_samesite_lax() -> None:
    async with make_client() as client:
        response = await client.post("/signin")
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith(f"{COOKIE_NAME}=")
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "secure" not in cookie


async def test_current_user_is_none_without_cookie_and_set_with_one() -> None:
    async with make_client() as client:
        assert (await client.get("/me")).json() == {"email": None}
        client.cookies.set(COOKIE_NAME, issue_token(USER, SETTINGS))
        assert (await client.get("/me")).json() == {"email": USER.email}


async def test_required_user_is_401_when_signed_out() -> None:
    async with make_client() as client:
        response = await client.get("/private")
    assert response.status_code == 401
    assert response.json() == {"errors": [{"message": "Not authorized"}]}


async def test_garbage_cookie_counts_as_signed_out() -> None:
    async with make_client() as client:
        client.cookies.set(COOKIE_NAME, "not-a-jwt")
        assert (await client.get("/private")).status_code == 401


def test_settings_refuse_the_development_key_in_production() -> None:
    with pytest.raises(ValidationError, match="JWT_KEY"):
        ServiceSettings(ENVIRONMENT="production", JWT_KEY=DEVELOPMENT_JWT_KEY)


def test_settings_accept_the_development_key_in_development() -> None:
    assert ServiceSettings(ENVIRONMENT="development").JWT_KEY == DEVELOPMENT_JWT_KEY


def test_settings_default_to_production_and_so_demand_a_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("ENVIRONMENT", raising=False)
    monkeypatch.delenv("JWT_KEY", raising=False)
    with pytest.raises(ValidationError):
        ServiceSettings()
