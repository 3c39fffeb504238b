"""The settings base every service extends: the only place that reads the environment.

Names are the ``UPPER_SNAKE`` environment variables. Outside development and tests a
service refuses to start unsafe: a JWT key shorter than 32 bytes or published in
this repository (``PUBLISHED_JWT_KEYS``) is refused, session cookies are ``Secure``
and the API docs pages are off unless set otherwise. A validation error never
echoes the values it was given, so no secret reaches a log.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Self
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ticketing_common.faults import parse_fault_points

DEVELOPMENT_JWT_KEY = "development-only-jwt-key-never-use-in-production"
# Every JWT key written in this repository (manifests, tests, docs): anyone can read
# them, so none may sign production sessions. A test scans the repository for keys
# and fails on one missing here.
PUBLISHED_JWT_KEYS = frozenset(
    {
        DEVELOPMENT_JWT_KEY,
        "development-cluster-jwt-key-0123456789abcdef",  # infra/k8s/overlays/dev
        "a-test-signing-key-of-at-least-32-bytes",
        "another-signing-key-of-at-least-32-bytes",
        "x" * 40,
        "s3cret-" * 6,
    }
)
MIN_JWT_KEY_BYTES = 32


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


_LOCAL_ENVIRONMENTS = frozenset({Environment.DEVELOPMENT, Environment.TEST})


class ServiceSettings(BaseSettings):
    """Settings shared by every service; a service subclasses it and adds its own."""

    # hide_input_in_errors: a refused JWT_KEY, Stripe key or database URL (with its
    # password) must not be printed in the start-up error.
    model_config = SettingsConfigDict(
        case_sensitive=True, extra="ignore", frozen=True, hide_input_in_errors=True
    )

    SERVICE_NAME: str = "service"
    ENVIRONMENT: Environment = Environment.PRODUCTION
    JWT_KEY: str = Field(default=DEVELOPMENT_JWT_KEY, repr=False)
    SESSION_TTL_SECONDS: int = Field(default=7 * 24 * 3600, gt=0)
    # The life of one session token. Auth renews it while the session lives (up to
    # SESSION_TTL_SECONDS), so a revocation that never reached a service can only
    # be ignored there this long.
    SESSION_TOKEN_TTL_SECONDS: int = Field(default=15 * 60, gt=0)
    # Unset: true outside development and tests (see _production_defaults), so a
    # deployment served over HTTPS never sends the session cookie in clear by default.
    COOKIE_SECURE: bool = True
    # True only behind the gateway, which overwrites X-Forwarded-For with the real
    # client; exposed directly, a client could name any address it likes and so
    # escape every per-client limit.
    TRUST_PROXY_HEADERS: bool = False
    # Swagger UI and the OpenAPI document; unset: on in development and tests only.
    API_DOCS_ENABLED: bool = False
    LOG_LEVEL: str = "INFO"
    # One log line per request (method, path, status, duration). Off by default: the
    # metrics count and time every request, and a line each costs more than the request's
    # own middleware (and the relaying of the line by whatever collects the logs).
    ACCESS_LOG: bool = False
    # Crash points to arm for fault-injection runs, ``name=probability,...`` (see
    # ticketing_common.faults); refused in production.
    FAULT_POINTS: Annotated[dict[str, float], NoDecode] = Field(default_factory=dict)
    # Tracing (ticketing_common.tracing), off when neither is set: spans go over
    # OTLP/HTTP to this collector (the OpenTelemetry variable: its base URL), and/or as
    # JSON lines to TRACES_FILE (local use).
    OTEL_EXPORTER_OTLP_ENDPOINT: str | None = None
    TRACES_FILE: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _production_defaults(cls, data: Any) -> Any:
        """Defaults that depend on ENVIRONMENT: safe in production, convenient locally
        (``ticketing up`` and the tests serve plain HTTP on 127.0.0.1)."""
        if not isinstance(data, dict):
            return data
        local = str(data.get("ENVIRONMENT", Environment.PRODUCTION)) in _LOCAL_ENVIRONMENTS
        defaults = {"COOKIE_SECURE": not local, "API_DOCS_ENABLED": local}
        return {**defaults, **{name: value for name, value in data.items() if value is not None}}

    @field_validator("JWT_KEY")
    @classmethod
    def _long_enough(cls, value: str) -> str:
        # Bytes, not characters: HMAC-SHA256 keys are bytes, and 32 of them is its strength.
        if len(value.encode()) < MIN_JWT_KEY_BYTES:
            raise ValueError(f"JWT_KEY must be at least {MIN_JWT_KEY_BYTES} bytes long")
        return value

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
    def _refuse_published_keys(self) -> Self:
        if self.ENVIRONMENT in _LOCAL_ENVIRONMENTS or self.JWT_KEY not in PUBLISHED_JWT_KEYS:
            return self
        raise ValueError(
            f"JWT_KEY must be set to a secret in {self.ENVIRONMENT.value}; "
            "this key is published in the repository (development or test key)"
        )


class DatabaseSettings(ServiceSettings):
    """For services that own a PostgreSQL database."""

    DATABASE_URL: str = Field(repr=False)
    # Connections kept open, and opened beyond them under a burst (closed when
    # returned). Sized for 32 requests at once plus the listeners without opening
    # new connections; six services stay under a PostgreSQL max_connections of 200.
    DATABASE_POOL_SIZE: int = Field(default=24, gt=0)
    DATABASE_POOL_OVERFLOW: int = Field(default=8, ge=0)


REDIS_SCHEMES = ("redis", "rediss", "unix")


class RedisSettings(ServiceSettings):
    """For services that keep shared counters or jobs in Redis."""

    # Required: a default of localhost is never right in a cluster, and a silent
    # fallback would count into (or schedule jobs in) a Redis nobody runs.
    REDIS_URL: str = Field(repr=False)

    @field_validator("REDIS_URL")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in REDIS_SCHEMES or not (parts.hostname or parts.path):
            raise ValueError("REDIS_URL must be a redis://host:port/db, rediss:// or unix:// URL")
        return value


class OrderSizeSettings(ServiceSettings):
    """How many units of a general-admission listing one order may hold: orders refuses
    more (400), the web client offers no more. One variable, read by both."""

    MAX_UNITS_PER_ORDER: int = Field(default=10, ge=1)


class BusSettings(ServiceSettings):
    """For services on the event bus."""

    NATS_URL: str = "nats://127.0.0.1:4222"
    # This service's user on a NATS server with users (ticketing_common.natsauth): the
    # user defaults to SERVICE_NAME when a password is set. Unset: no credentials.
    NATS_USER: str | None = None
    NATS_PASSWORD: str | None = Field(default=None, repr=False)
    # Streams and subjects are namespaced so tests (and tenants) never see each other's events.
    NATS_NAMESPACE: str = Field(default="ticketing", pattern=r"^[a-z][a-z0-9_]*$")
    NATS_STREAM_REPLICAS: int = Field(default=1, ge=1, le=5)
    EVENT_MAX_DELIVERIES: int = Field(default=8, ge=1)
    EVENT_ACK_WAIT_SECONDS: float = Field(default=30, gt=0)
    # Events per fetch; a transactional listener applies a fetch in one transaction.
    EVENT_BATCH_SIZE: int = Field(default=64, ge=1, le=1000)
    # After a fetch that brought events but did not fill a batch, a listener waits this
    # long before its next: under load the events of that moment are then applied in
    # one transaction and acked together, instead of a fetch, a transaction and an ack
    # round for every one or two. A backlog (a full batch) is fetched again at once and
    # an idle consumer's fetch answers the moment an event arrives, so this only adds
    # latency to an event that follows another closely; 0 turns it off.
    EVENT_BATCH_LINGER_MS: float = Field(default=50, ge=0, le=1000)
    # The outbox relay's counterpart: woken by a commit right after it published, it
    # waits this long before it reads again.
    OUTBOX_LINGER_MS: float = Field(default=20, ge=0, le=1000)


class EventServiceSettings(DatabaseSettings, BusSettings):
    """For services that own a database and publish or consume events."""
