"""Fixtures: the real tickets, orders and payments services side by side, each on its own
fresh, migrated PostgreSQL database, on one fresh NATS namespace (the shared harness,
``ticketing_common.testing.service``); they talk only through events. Payments talks to
the Stripe sandbox (or Stripe) given by ``stripe_api``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import httpx
import pytest
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import select

import ticketing_orders.app
import ticketing_orders.settings
import ticketing_payments.app
import ticketing_payments.settings
import ticketing_tickets.app
import ticketing_tickets.settings
from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.testing import (
    ServedApp,
    ServiceHarness,
    serve_spec,
    signed_in_headers,
    wait_until,
)
from ticketing_orders.models import TicketReplica

# Generous: several services, retries with back-off, a shared test machine.
SETTLE_SECONDS = 30.0
UNLIMITED_RATE = "100000/minute"

ServeOrders = Callable[[], AbstractAsyncContextManager[ServedApp]]


def cents(price: object) -> int:
    return int(Decimal(str(price)) * 100)


@pytest.fixture
async def tickets_settings(harness: ServiceHarness) -> ticketing_tickets.settings.Settings:
    return await harness.settings(ticketing_tickets.app.SPEC)


@pytest.fixture
async def orders_settings(harness: ServiceHarness) -> ticketing_orders.settings.Settings:
    return await harness.settings(
        ticketing_orders.app.SPEC,
        EXPIRATION_WINDOW_SECONDS=900,
        # The races below send many orders from one address, some from one buyer.
        ORDER_RATE_PER_USER=UNLIMITED_RATE,
        ORDER_RATE_PER_CLIENT=UNLIMITED_RATE,
    )


@pytest.fixture
async def payments_settings(harness: ServiceHarness) -> ticketing_payments.settings.Settings:
    return await harness.settings(ticketing_payments.app.SPEC)


@pytest.fixture
async def payments_app(
    payments_settings: ticketing_payments.settings.Settings,
) -> AsyncIterator[ServedApp]:
    async with serve_spec(ticketing_payments.app.SPEC, payments_settings) as served:
        yield served


@pytest.fixture
async def tickets_app(
    tickets_settings: ticketing_tickets.settings.Settings,
) -> AsyncIterator[ServedApp]:
    """Tickets with its relay and listeners."""
    async with serve_spec(ticketing_tickets.app.SPEC, tickets_settings) as served:
        yield served


@pytest.fixture
def serve_orders(orders_settings: ticketing_orders.settings.Settings) -> ServeOrders:
    """Serve one more orders instance on the same database and namespace."""

    @asynccontextmanager
    async def serve() -> AsyncIterator[ServedApp]:
        async with serve_spec(ticketing_orders.app.SPEC, orders_settings) as served:
            yield served

    return serve


@pytest.fixture
async def orders_app(serve_orders: ServeOrders) -> AsyncIterator[ServedApp]:
    async with serve_orders() as served:
        yield served


@pytest.fixture
async def orders_db(
    orders_settings: ticketing_orders.settings.Settings,
) -> AsyncIterator[Database]:
    """Direct access to orders' database, to read its ticket replica."""
    database = Database(orders_settings.DATABASE_URL, pool_size=2)
    try:
        yield database
    finally:
        await database.dispose()


async def replica_of(db: Database, ticket_id: UUID) -> TicketReplica | None:
    async with db.transaction() as session:
        return await session.scalar(select(TicketReplica).where(TicketReplica.id == ticket_id))


@dataclass
class Marketplace:
    """Both services over real HTTP, and orders' replica read straight from its database."""

    tickets: httpx.AsyncClient
    orders: httpx.AsyncClient
    orders_db: Database
    settings: ticketing_tickets.settings.Settings

    def as_user(self, user_id: UUID) -> dict[str, str]:
        return signed_in_headers(self.settings, user_id=user_id)

    async def list_ticket(self, seller: UUID, *, price: str = "20.50") -> dict[str, Any]:
        response = await self.tickets.post(
            "/api/tickets", json={"title": "Concert", "price": price}, headers=self.as_user(seller)
        )
        assert response.status_code == 201, response.text
        body: dict[str, Any] = response.json()
        return body

    async def ticket(self, ticket_id: object) -> dict[str, Any]:
        response = await self.tickets.get(f"/api/tickets/{ticket_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    async def replica_at(self, ticket_id: UUID, version: int) -> TicketReplica:
        """Orders' copy once it has reached ``version`` (fails after SETTLE_SECONDS)."""

        async def reached() -> TicketReplica | None:
            replica = await replica_of(self.orders_db, ticket_id)
            return replica if replica is not None and replica.version >= version else None

        return await wait_until(reached, timeout=SETTLE_SECONDS)

    async def settled(self, ticket_id: UUID) -> tuple[dict[str, Any], TicketReplica]:
        """The owner's ticket and orders' copy once the copy caught up with the owner."""

        async def caught_up() -> tuple[dict[str, Any], TicketReplica] | None:
            owner = await self.ticket(ticket_id)
            replica = await replica_of(self.orders_db, ticket_id)
            if replica is None or replica.version != owner["version"]:
                return None
            return owner, replica

        return await wait_until(caught_up, timeout=SETTLE_SECONDS)


@pytest.fixture
async def marketplace(
    tickets_app: ServedApp,
    orders_app: ServedApp,
    orders_db: Database,
    tickets_settings: ticketing_tickets.settings.Settings,
) -> AsyncIterator[Marketplace]:
    async with tickets_app.client() as tickets, orders_app.client() as orders:
        yield Marketplace(tickets, orders, orders_db, tickets_settings)


async def stream_messages(bus: EventBus, subject: str, stream: str) -> int:
    """How many messages a subject holds in a stream (0 when the stream does not exist)."""
    try:
        subscription = await bus.js.pull_subscribe(
            subject,
            stream=stream,
            config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE),
        )
    except Exception:
        return 0
    count = 0
    try:
        while True:
            try:
                messages = await subscription.fetch(100, timeout=0.5)
            except (TimeoutError, NatsTimeoutError):
                return count
            count += len(messages)
    finally:
        await subscription.unsubscribe()


async def dead_letters(bus: EventBus) -> int:
    """How many events any service of the test's namespace gave up on."""
    return await stream_messages(
        bus, bus.subjects.all_dead_letters, bus.subjects.dead_letter_stream
    )


async def pause(bus: EventBus, durable: str) -> None:
    """Hold back a service's consumer (its events wait in the stream) until ``resume``."""
    assert await bus.pause_consumer(durable, datetime.now(UTC) + timedelta(minutes=5))


async def resume(bus: EventBus, durable: str) -> None:
    assert not await bus.pause_consumer(durable, None)
