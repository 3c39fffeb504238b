"""Fixtures: tickets served over real HTTP on a fresh, migrated PostgreSQL database and
a fresh NATS namespace, plus helpers to read and publish events on that namespace."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Protocol
from uuid import UUID, uuid4

import httpx
import pytest

from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import Envelope, P
from ticketing_common.testing import (
    MakeMigratedDatabase,
    ServedApp,
    published_so_far,
    serve_app,
    signed_in_cookie,
)
from ticketing_tickets.app import create_app
from ticketing_tickets.settings import Settings

NewTicket = Callable[..., Awaitable[dict[str, object]]]


class EventsOf(Protocol):
    async def __call__(self, payload_type: type[P], /) -> list[Envelope[P]]: ...


@pytest.fixture
async def migrated_url(make_migrated_database: MakeMigratedDatabase) -> str:
    return await make_migrated_database("ticketing_tickets")


@pytest.fixture
def settings(migrated_url: str, nats_url: str, namespace: str) -> Settings:
    return Settings(
        DATABASE_URL=migrated_url,
        NATS_URL=nats_url,
        NATS_NAMESPACE=namespace,
        ENVIRONMENT="test",
        SERVICE_NAME="tickets",
    )


@pytest.fixture
async def served(settings: Settings, bus: EventBus) -> AsyncIterator[ServedApp]:
    """The app with its relay and listeners; ``bus`` first, so its streams go afterwards."""
    async with serve_app(create_app(settings)) as app:
        yield app


@pytest.fixture
async def client(served: ServedApp) -> AsyncIterator[httpx.AsyncClient]:
    async with served.client() as client:
        yield client


@pytest.fixture
def seller_id() -> UUID:
    return uuid4()


@pytest.fixture
async def seller(
    served: ServedApp, settings: Settings, seller_id: UUID
) -> AsyncIterator[httpx.AsyncClient]:
    """A client signed in as the seller."""
    async with served.client(cookies=signed_in_cookie(settings, user_id=seller_id)) as client:
        yield client


@pytest.fixture
async def stranger(served: ServedApp, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client signed in as another user."""
    async with served.client(cookies=signed_in_cookie(settings)) as client:
        yield client


@pytest.fixture
def new_ticket(seller: httpx.AsyncClient) -> NewTicket:
    """Create a ticket as the seller through the API; returns its JSON."""

    async def create(title: str = "Concert", price: float | str = 20.5) -> dict[str, object]:
        response = await seller.post("/api/tickets", json={"title": title, "price": price})
        assert response.status_code == 201, response.text
        body: dict[str, object] = response.json()
        return body

    return create


@pytest.fixture
async def db(migrated_url: str) -> AsyncIterator[Database]:
    """Direct access to tickets' database, to check rows and hold locks."""
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


def price(value: object) -> Decimal:
    return Decimal(str(value))
