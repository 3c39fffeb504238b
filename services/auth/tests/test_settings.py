"""Auth's settings: secrets refused outside development, limits configurable."""

from __future__ import annotations

import secrets

import pytest
from pydantic import ValidationError

from ticketing_auth.settings import Settings
from ticketing_common.settings import DEVELOPMENT_JWT_KEY

URL = "postgresql://postgres@127.0.0.1:5432/auth"


def test_settings_refuse_the_development_jwt_key_in_production() -> None:
    with pytest.raises(ValidationError, match="JWT_KEY"):
        Settings(DATABASE_URL=URL, ENVIRONMENT="production", JWT_KEY=DEVELOPMENT_JWT_KEY)


def test_settings_refuse_a_missing_jwt_key_in_production() -> None:
    with pytest.raises(ValidationError, match="JWT_KEY"):
        Settings(DATABASE_URL=URL, ENVIRONMENT="production")


def test_settings_accept_a_real_jwt_key_in_production() -> None:
    key = secrets.token_urlsafe(32)
    settings = Settings(DATABASE_URL=URL, ENVIRONMENT="production", JWT_KEY=key)

    assert key == settings.JWT_KEY


def test_settings_accept_the_development_key_in_tests() -> None:
    settings = Settings(DATABASE_URL=URL, ENVIRONMENT="test")

    assert settings.JWT_KEY == DEVELOPMENT_JWT_KEY


def test_settings_default_to_5_failures_per_email_in_15_minutes_and_no_proxy_trust() -> None:
    settings = Settings(DATABASE_URL=URL, ENVIRONMENT="test")

    assert settings.SERVICE_NAME == "auth"
    assert settings.SIGNIN_MAX_FAILURES_PER_EMAIL == 5
    assert settings.SIGNIN_MAX_FAILURES_PER_CLIENT > settings.SIGNIN_MAX_FAILURES_PER_EMAIL
    assert settings.SIGNIN_WINDOW_SECONDS == 900
    assert settings.TRUST_PROXY_HEADERS is False


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", URL)
    monkeypatch.setenv("ENVIRONMENT", "test")
    monkeypatch.setenv("SIGNIN_MAX_FAILURES_PER_EMAIL", "3")
    monkeypatch.setenv("TRUST_PROXY_HEADERS", "true")

    settings = Settings()

    assert settings.SIGNIN_MAX_FAILURES_PER_EMAIL == 3
    assert settings.TRUST_PROXY_HEADERS is True


@pytest.mark.parametrize(
    "override",
    [
        {"SIGNIN_MAX_FAILURES_PER_EMAIL": 0},
        {"SIGNIN_MAX_FAILURES_PER_CLIENT": 0},
        {"SIGNIN_WINDOW_SECONDS": 0},
    ],
)
def test_settings_refuse_limits_below_one(override: dict[str, int]) -> None:
    with pytest.raises(ValidationError):
        Settings(DATABASE_URL=URL, ENVIRONMENT="test", **override)  # type: ignore[arg-type]
