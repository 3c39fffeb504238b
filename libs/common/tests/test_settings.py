"""Production refuses to start unsafe: weak or published keys, insecure cookies, and
secrets echoed in a start-up error."""

from __future__ import annotations

import secrets

import pytest
from pydantic import SecretStr, ValidationError

from ticketing_common.settings import (
    DEVELOPMENT_JWT_KEY,
    PUBLISHED_JWT_KEYS,
    DatabaseSettings,
    ServiceSettings,
)

SECRET = secrets.token_urlsafe(32)


def test_production_refuses_a_key_shorter_than_32_bytes_without_printing_it() -> None:
    short = "short-but-secret-key-9f3a"

    with pytest.raises(ValidationError, match="at least 32 bytes") as refused:
        ServiceSettings(ENVIRONMENT="production", JWT_KEY=short)

    assert short not in str(refused.value)


def test_the_length_is_counted_in_bytes_not_characters() -> None:
    # Two bytes each in UTF-8: 16 characters are 32 bytes, so accepted; 31 bytes are not.
    wide = "".join(secrets.choice("éüøß") for _ in range(16))

    assert wide == ServiceSettings(ENVIRONMENT="production", JWT_KEY=wide).JWT_KEY
    with pytest.raises(ValidationError, match="at least 32 bytes"):
        ServiceSettings(ENVIRONMENT="production", JWT_KEY=wide[:15] + "x")


@pytest.mark.parametrize("key", sorted(PUBLISHED_JWT_KEYS))
def test_production_refuses_every_key_published_in_the_repository(key: str) -> None:
    with pytest.raises(ValidationError, match="published in the repository") as refused:
        ServiceSettings(ENVIRONMENT="production", JWT_KEY=key)

    assert key not in str(refused.value)


@pytest.mark.parametrize("environment", ["development", "test"])
def test_development_and_tests_accept_published_keys(environment: str) -> None:
    for key in PUBLISHED_JWT_KEYS:
        assert key == ServiceSettings(ENVIRONMENT=environment, JWT_KEY=key).JWT_KEY


def test_production_accepts_a_secret_key() -> None:
    assert ServiceSettings(ENVIRONMENT="production", JWT_KEY=SECRET).JWT_KEY == SECRET


def test_the_development_key_is_published() -> None:
    assert DEVELOPMENT_JWT_KEY in PUBLISHED_JWT_KEYS


@pytest.mark.parametrize(
    ("environment", "secure", "docs"),
    [("production", True, False), ("development", False, True), ("test", False, True)],
)
def test_cookies_are_secure_and_docs_off_by_default_outside_development(
    monkeypatch: pytest.MonkeyPatch, environment: str, secure: bool, docs: bool
) -> None:
    monkeypatch.delenv("COOKIE_SECURE", raising=False)
    monkeypatch.delenv("API_DOCS_ENABLED", raising=False)
    monkeypatch.setenv("ENVIRONMENT", environment)
    monkeypatch.setenv("JWT_KEY", SECRET)

    settings = ServiceSettings()

    assert settings.COOKIE_SECURE is secure
    assert settings.API_DOCS_ENABLED is docs


def test_an_explicit_cookie_and_docs_setting_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COOKIE_SECURE", "false")
    monkeypatch.setenv("API_DOCS_ENABLED", "true")

    settings = ServiceSettings(ENVIRONMENT="production", JWT_KEY=SECRET)

    assert settings.COOKIE_SECURE is False
    assert settings.API_DOCS_ENABLED is True


class _WithStripe(DatabaseSettings):
    """A service's settings with a Stripe key, as payments declares it."""

    STRIPE_SECRET_KEY: SecretStr


def test_a_refused_setting_never_echoes_the_secrets_beside_it() -> None:
    password = "pg-" + secrets.token_hex(8)
    stripe_key = "sk_live_" + secrets.token_hex(12)
    key = "too-short-" + secrets.token_hex(4)

    with pytest.raises(ValidationError) as refused:
        _WithStripe(
            ENVIRONMENT="production",
            JWT_KEY=key,
            DATABASE_URL=f"postgresql://app:{password}@db:5432/app",
            DATABASE_POOL_SIZE="many",
            STRIPE_SECRET_KEY=stripe_key,
        )

    message = str(refused.value)
    assert "JWT_KEY" in message
    assert "DATABASE_POOL_SIZE" in message
    for secret in (password, stripe_key, key):
        assert secret not in message


def test_settings_print_no_secret() -> None:
    password = "pg-" + secrets.token_hex(8)
    settings = DatabaseSettings(
        ENVIRONMENT="production", JWT_KEY=SECRET, DATABASE_URL=f"postgresql://a:{password}@db/a"
    )

    assert SECRET not in repr(settings)
    assert password not in repr(settings)
