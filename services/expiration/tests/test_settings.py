"""Expiration's settings: REDIS_URL is required and checked; the queue follows the namespace."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ticketing_expiration.settings import Settings


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("REDIS_URL", "NATS_NAMESPACE", "EXPIRATION_QUEUE", "EXPIRATION_POLL_SECONDS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ENVIRONMENT", "test")


def test_redis_url_is_required() -> None:
    with pytest.raises(ValidationError) as raised:
        Settings()

    assert [error["loc"] for error in raised.value.errors()] == [("REDIS_URL",)]
    assert raised.value.errors()[0]["type"] == "missing"


@pytest.mark.parametrize("url", ["", "localhost:6379", "http://127.0.0.1:6379/0", "redis://"])
def test_a_redis_url_that_is_not_one_is_refused(url: str) -> None:
    with pytest.raises(ValidationError, match="REDIS_URL must be"):
        Settings(REDIS_URL=url)


def test_queue_name_is_derived_from_the_namespace_unless_set() -> None:
    assert Settings(REDIS_URL="redis://127.0.0.1:6379/0").queue_name == (
        "ticketing:ticketing:expiration"
    )
    assert Settings(REDIS_URL="redis://127.0.0.1:6379/0", NATS_NAMESPACE="tenant_a").queue_name == (
        "ticketing:tenant_a:expiration"
    )
    assert (
        Settings(REDIS_URL="redis://127.0.0.1:6379/0", EXPIRATION_QUEUE="jobs").queue_name == "jobs"
    )


def test_poll_interval_defaults_small_and_must_be_positive() -> None:
    assert Settings(REDIS_URL="redis://127.0.0.1:6379/0").EXPIRATION_POLL_SECONDS == 0.1
    with pytest.raises(ValidationError, match="EXPIRATION_POLL_SECONDS"):
        Settings(REDIS_URL="redis://127.0.0.1:6379/0", EXPIRATION_POLL_SECONDS=0)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6390/2")
    monkeypatch.setenv("EXPIRATION_POLL_SECONDS", "0.05")

    settings = Settings()

    assert settings.REDIS_URL == "redis://127.0.0.1:6390/2"
    assert settings.EXPIRATION_POLL_SECONDS == 0.05
