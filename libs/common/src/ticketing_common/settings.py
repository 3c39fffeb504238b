"""The settings base every service extends: the only place that reads the environment.

Names are the ``UPPER_SNAKE`` environment variables. The development JWT key is
refused outside development and tests, so a forgotten secret fails at start-up,
not in production traffic.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Self
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ticketing_common.faults import parse_fault_points

DEVELOPMENT_JWT_KEY = "development-only-jwt-key-never-use-in-production"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class ServiceSettings(BaseSettings):
    """Settings shared by every service; a service subclasses it and adds its own."""

    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore", frozen=True)

    SERVICE_NAME: str = "service"
    ENVIRONMENT: Environment = Environment.PRODUCTION
    JWT_KEY: str = Field(default=DEVELOPMENT_JWT_KEY, min_length=32)
    SESSION_TTL_SECONDS: int = Field(default=7 * 24 * 3600, gt=0)
    # The life of one session token. Auth renews it while the session lives (up to
    # SESSION_TTL_SECONDS), so a revocation that never reached a service can only
    # be ignored there this long.
    SESSION_TOKEN_TTL_SECONDS: int = Field(default=15 * 60, gt=0)
    COOKIE_SECURE: bool = False
    # True only behind the gateway, which overwrites X-Forwarded-For with the real
    # client; exposed directly, a client could name any address it likes and so
    # escape every per-client limit.
    TRUST_PROXY_HEADERS: bool = False
    LOG_LEVEL: str = "INFO"
    # Crash points to arm for fault-injection runs, ``name=probability,...`` (see
    # ticketing_common.faults); refused in production.
    FAULT_POINTS: Annotated[dict[str, float], NoDecode] = Field(default_factory=dict)

    @field_validator("FAULT_POINTS", mode="before")
    @classmethod
    def _parse_fault_points(cls, value: object) -> object:
        return parse_fault_points(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _refuse_faults_in_production(self) -> Self:
        if self.FAULT_POINTS and self.ENVIRONMENT is Environment.PRODUCTION:
            raise ValueError("FAULT_POINTS kills processes on purpose; it is refused in production")
        return self

    @model_validator(mode="after")
    def _refuse_development_key(self) -> Self:
        development = self.ENVIRONMENT in {Environment.DEVELOPMENT, Environment.TEST}
        if self.JWT_KEY == DEVELOPMENT_JWT_KEY and not development:
            raise ValueError(
                f"JWT_KEY must be set to a secret in {self.ENVIRONMENT.value}; "
                "the development key is only accepted when ENVIRONMENT=development"
            )
        return self


class DatabaseSettings(ServiceSettings):
    """For services that own a PostgreSQL database."""

    DATABASE_URL: str
    DATABASE_POOL_SIZE: int = Field(default=10, gt=0)


REDIS_SCHEMES = ("redis", "rediss", "unix")


class RedisSettings(ServiceSettings):
    """For services that keep shared counters or jobs in Redis."""

    # Required: a default of localhost is never right in a cluster, and a silent
    # fallback would count into (or schedule jobs in) a Redis nobody runs.
    REDIS_URL: str

    @field_validator("REDIS_URL")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in REDIS_SCHEMES or not (parts.hostname or parts.path):
            raise ValueError("REDIS_URL must be a redis://host:port/db, rediss:// or unix:// URL")
        return value


class BusSettings(ServiceSettings):
    """For services on the event bus."""

    NATS_URL: str = "nats://127.0.0.1:4222"
    # Streams and subjects are namespaced so tests (and tenants) never see each other's events.
    NATS_NAMESPACE: str = Field(default="ticketing", pattern=r"^[a-z][a-z0-9_]*$")
    NATS_STREAM_REPLICAS: int = Field(default=1, ge=1, le=5)
    EVENT_MAX_DELIVERIES: int = Field(default=8, ge=1)
    EVENT_ACK_WAIT_SECONDS: float = Field(default=30, gt=0)


class EventServiceSettings(DatabaseSettings, BusSettings):
    """For services that own a database and publish or consume events."""
