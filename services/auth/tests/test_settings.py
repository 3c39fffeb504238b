"""Auth's settings: secrets refused outside development, limits configurable."""

from __future__ import annotations

import secrets

import pytest
from pydantic import ValidationError

from ticketing_auth.app import SPEC
from ticketing_auth.settings import Settings
from ticketing_common.settings import DEVELOPMENT_JWT_KEY

URL = "postgresql://postgres@127.0.0.1:5432/auth"
REDIS = "redis://127.0.0.1:6379/0"


def test_settings_refuse_the_development_jwt_key_in_production() -> None:
    with pytest.raises(ValidationError, match="JWT_KEY"):
        Settings(
            DATABASE_URL=URL, REDIS_URL=REDIS, ENVIRONMENT="production", JWT_KEY=DEVELOPMENT_JWT_KEY
        )


def test_settings_refuse_a_missing_jwt_key_in_production() -> None:
    with pytest.raises(ValidationError, match="JWT_KEY"):
        Settings(DATABASE_URL=URL, REDIS_URL=REDIS, ENVIRONMENT="production")


def test_settings_accept_a_real_jwt_key_in_production() -> None:
    key = secrets.token_urlsafe(32)
    settings = Settings(DATABASE_URL=URL, REDIS_URL=REDIS, ENVIRONMENT="production", JWT_KEY=key)

    assert key == settings.JWT_KEY


def test_settings_accept_the_development_key_in_tests() -> None:
    settings = Settings(DATABASE_URL=URL, REDIS_URL=REDIS, ENVIRONMENT="test")

    assert settings.JWT_KEY == DEVELOPMENT_JWT_KEY


def test_settings_default_to_5_failures_per_email_in_15_minutes_and_no_proxy_trust() -> None:
    settings = Settings(DATABASE_URL=URL, REDIS_URL=REDIS, ENVIRONMENT="test")

    assert settings.SIGNIN_MAX_FAILURES_PER_EMAIL == 5
    assert settings.SIGNIN_MAX_FAILURES_PER_CLIENT > settings.SIGNIN_MAX_FAILURES_PER_EMAIL
    assert settings.SIGNIN_WINDOW_SECONDS == 900
    assert settings.TRUST_PROXY_HEADERS is False


def test_service_name_is_the_specs_name_unless_the_environment_names_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = {"DATABASE_URL": URL, "REDIS_URL": REDIS, "ENVIRONMENT": "test"}
    monkeypatch.delenv("SERVICE_NAME", raising=False)
    assert SPEC.load_settings(**values).SERVICE_NAME == "auth"

    monkeypatch.setenv("SERVICE_NAME", "auth-canary")
    assert SPEC.load_settings(**values).SERVICE_NAME == "auth-canary"


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", URL)
    monkeypatch.setenv("REDIS_URL", REDIS)
    monkeypatch.setenv("ENVIRONMENT", "test")
    monkeypatch.setenv("SIGNIN_MAX_FAILURES_PER_EMAIL", "3")
    monkeypatch.setenv("TRUST_PROXY_HEADERS", "true")
    monkeypatch.setenv("SIGNUP_RATE_PER_CLIENT", "500 per day")

    settings = Settings()

    assert settings.SIGNIN_MAX_FAILURES_PER_EMAIL == 3
    assert settings.TRUST_PROXY_HEADERS is True
    assert settings.SIGNUP_RATE_PER_CLIENT == "500 per day"


def test_settings_default_to_rates_that_allow_for_a_shared_address() -> None:
    settings = Settings(DATABASE_URL=URL, REDIS_URL=REDIS, ENVIRONMENT="test")

    assert (settings.SIGNUP_RATE_PER_CLIENT, settings.SIGNUP_RATE_PER_EMAIL) == (
        "20/hour",
        "5/hour",
    )
    assert (settings.SIGNIN_RATE_PER_CLIENT, settings.SIGNIN_RATE_PER_EMAIL) == (
        "100/15 minutes",
        "10/15 minutes",
    )


@pytest.mark.parametrize("name", ["SIGNUP_RATE_PER_CLIENT", "SIGNIN_RATE_PER_EMAIL"])
def test_settings_refuse_a_rate_that_is_no_rate(name: str) -> None:
    with pytest.raises(ValidationError, match="is not a rate"):
        Settings(DATABASE_URL=URL, REDIS_URL=REDIS, ENVIRONMENT="test", **{name: "often"})  # type: ignore[arg-type]


def test_settings_require_redis_for_the_rate_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REDIS_URL", raising=False)
    with pytest.raises(ValidationError, match="REDIS_URL"):
        Settings(DATABASE_URL=URL, ENVIRONMENT="test")


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
        Settings(DATABASE_URL=URL, REDIS_URL=REDIS, ENVIRONMENT="test", **override)  # type: ignore[arg-type]
