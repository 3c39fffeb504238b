"""Fixtures: orders served over real HTTP on a fresh, migrated PostgreSQL database and a
fresh NATS namespace; tickets reach its replica through real ticket events on the bus."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import select

from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import Envelope, TicketCreated
from ticketing_common.testing import (
    MakeMigratedDatabase,
    ServedApp,
    serve_app,
    signed_in_cookie,
    wait_until,
)
from ticketing_orders.app import create_app
from ticketing_orders.models import TicketReplica
from ticketing_orders.settings import Settings

ServeOrders = Callable[..., AbstractAsyncContextManager[ServedApp]]


@pytest.fixture
async def migrated_url(make_migrated_database: MakeMigratedDatabase) -> str:
    return await make_migrated_database("ticketing_orders")


# Every test's requests come from one address and many from one buyer: the rates are
# raised for them all, and the tests of the rates themselves set their own.
UNLIMITED_RATE = "100000/minute"


@pytest.fixture
def make_settings(
    migrated_url: str, nats_url: str, namespace: str, redis_url: str
) -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "DATABASE_URL": migrated_url,
            "NATS_URL": nats_url,
            "NATS_NAMESPACE": namespace,
            "REDIS_URL": redis_url,
            "ENVIRONMENT": "test",
            "SERVICE_NAME": "orders",
            "EXPIRATION_WINDOW_SECONDS": 900,
            "ORDER_RATE_PER_USER": UNLIMITED_RATE,
            "ORDER_RATE_PER_CLIENT": UNLIMITED_RATE,
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def serve_orders(make_settings: Callable[..., Settings], bus: EventBus) -> ServeOrders:
    """Serve orders with some settings overridden (the test's bus is connected first)."""

    @asynccontextmanager
    async def serve(**overrides: object) -> AsyncIterator[ServedApp]:
        async with serve_app(create_app(make_settings(**overrides))) as served:
            yield served

    return serve


@pytest.fixture
async def orders(serve_orders: ServeOrders) -> AsyncIterator[ServedApp]:
    async with serve_orders() as served:
        yield served


@pytest.fixture
async def client(orders: ServedApp) -> AsyncIterator[httpx.AsyncClient]:
    async with orders.client() as client:
        yield client


@pytest.fixture
async def db(migrated_url: str) -> AsyncIterator[Database]:
    """Direct access to orders' database, to check rows."""
    database = Database(migrated_url, pool_size=2)
    try:
        yield database
    finally:
        await database.dispose()


@dataclass
class Users:
    """Session cookies of made-up users, signed the way auth signs them."""

    settings: Settings

    def headers(self, user_id: UUID) -> dict[str, str]:
        """A Cookie header (per-request ``cookies=`` is deprecated in httpx)."""
        cookies = signed_in_cookie(self.settings, user_id=user_id)
        return {"Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())}


@pytest.fixture
def users(settings: Settings) -> Users:
    return Users(settings)


async def replica_ticket(db: Database, ticket_id: UUID) -> TicketReplica | None:
    async with db.transaction() as session:
        return await session.scalar(select(TicketReplica).where(TicketReplica.id == ticket_id))


@dataclass
class Tickets:
    """Lists tickets the way the tickets service does: by publishing ticket:created."""

    bus: EventBus
    db: Database

    async def listed(
        self, *, seller_id: UUID | None = None, title: str = "Concert", price: str = "20.50"
    ) -> TicketCreated:
        ticket = TicketCreated(
            id=uuid4(),
            version=0,
            title=title,
            price=Decimal(price),
            user_id=seller_id or uuid4(),
        )
        await self.bus.publish(Envelope.of(ticket))

        async def replicated() -> bool:
            return await replica_ticket(self.db, ticket.id) is not None

        await wait_until(replicated)
        return ticket


@pytest.fixture
def tickets(bus: EventBus, db: Database, orders: ServedApp) -> Tickets:
    return Tickets(bus, db)
