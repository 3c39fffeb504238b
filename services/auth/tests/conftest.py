"""Fixtures: auth served over real HTTP on a fresh, migrated PostgreSQL database, a fresh
NATS namespace (auth publishes session:revoked) and a reader of its events; its rate
limits counted in the real Redis under that namespace."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

import httpx
import pytest

from ticketing_auth.app import create_app
from ticketing_auth.settings import Settings
from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import Envelope, P
from ticketing_common.testing import MakeMigratedDatabase, published_so_far, serve_app

ServeAuth = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


class EventsOf(Protocol):
    async def __call__(self, payload_type: type[P], /) -> list[Envelope[P]]: ...


@pytest.fixture
async def migrated_url(make_migrated_database: MakeMigratedDatabase) -> str:
    return await make_migrated_database("ticketing_auth")


@pytest.fixture
def make_settings(
    migrated_url: str, nats_url: str, redis_url: str, namespace: str
) -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "DATABASE_URL": migrated_url,
            "NATS_URL": nats_url,
            # A fresh namespace: this test's events and rate-limit counters only.
            "NATS_NAMESPACE": namespace,
            "REDIS_URL": redis_url,
            "ENVIRONMENT": "test",
            "SERVICE_NAME": "auth",
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def serve_auth(make_settings: Callable[..., Settings], bus: EventBus) -> ServeAuth:
    """Serve auth with some settings overridden; yields a client of it.

    ``bus`` first, so the namespace's streams are deleted after auth stopped.
    """

    @asynccontextmanager
    async def serve(**overrides: object) -> AsyncIterator[httpx.AsyncClient]:
        app = create_app(make_settings(**overrides))
        async with serve_app(app) as served, served.client() as client:
            yield client

    return serve


@pytest.fixture
async def client(serve_auth: ServeAuth) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_auth() as client:
        yield client


@pytest.fixture
async def db(migrated_url: str) -> AsyncIterator[Database]:
    """Direct access to auth's database, to check rows."""
    database = Database(migrated_url, pool_size=2)
    try:
        yield database
    finally:
        await database.dispose()


@pytest.fixture
def events_of(bus: EventBus) -> EventsOf:
    """Every event of one type published on the test's namespace so far, in order."""

    async def read(payload_type: type[P]) -> list[Envelope[P]]:
        return await published_so_far(bus, payload_type)

    return read
