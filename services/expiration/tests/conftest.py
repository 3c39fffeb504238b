"""Fixtures: expiration served over real HTTP on real NATS and Redis, a fresh namespace
(streams and arq queue) per test; orders are simulated by publishing order:created."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import pytest
from redis.asyncio import Redis

from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import (
    Envelope,
    ExpirationComplete,
    OrderCreated,
    OrderStatus,
    PricedTicketRef,
)
from ticketing_common.events.listener import ListenerGroup
from ticketing_common.testing import ServedApp, published_so_far, serve_app
from ticketing_expiration.app import create_app
from ticketing_expiration.jobs import JobWorker
from ticketing_expiration.settings import Settings

ServeExpiration = Callable[..., AbstractAsyncContextManager[ServedApp]]


@pytest.fixture
async def make_settings(
    redis_url: str, nats_url: str, namespace: str
) -> AsyncIterator[Callable[..., Settings]]:
    def make(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "REDIS_URL": redis_url,
            "NATS_URL": nats_url,
            "NATS_NAMESPACE": namespace,
            "ENVIRONMENT": "test",
        }
        values.update(overrides)
        return Settings(**values)  # type: ignore[arg-type]

    yield make
    # The namespace's queue and its job/result keys go with the test.
    queue = make().queue_name
    redis = Redis.from_url(redis_url)
    try:
        keys = [key async for key in redis.scan_iter(match=f"*{queue}*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()  # type: ignore[attr-defined]


@pytest.fixture
def serve_expiration(make_settings: Callable[..., Settings], bus: EventBus) -> ServeExpiration:
    """Serve expiration with some settings overridden (the test's bus is connected first)."""

    @asynccontextmanager
    async def serve(**overrides: object) -> AsyncIterator[ServedApp]:
        async with serve_app(create_app(make_settings(**overrides))) as served:
            yield served

    return serve


@pytest.fixture
async def expiration(serve_expiration: ServeExpiration) -> AsyncIterator[ServedApp]:
    async with serve_expiration() as served:
        yield served


def worker_of(served: ServedApp) -> JobWorker:
    return served.component(JobWorker)


def handled(served: ServedApp) -> int:
    """order:created events the served app's listener has acked."""
    return served.component(ListenerGroup).handled


def order_created(
    *, expires_in: float, order_id: UUID | None = None, expires_at: datetime | None = None
) -> OrderCreated:
    return OrderCreated(
        id=order_id or uuid4(),
        version=0,
        status=OrderStatus.CREATED,
        user_id=uuid4(),
        expires_at=expires_at or datetime.now(UTC) + timedelta(seconds=expires_in),
        ticket=PricedTicketRef(id=uuid4(), price=Decimal("20.50")),
    )


async def expirations_of(bus: EventBus, order_id: UUID) -> list[Envelope[ExpirationComplete]]:
    """Every expiration:complete of the order in the test's stream right now."""
    events = await published_so_far(bus, ExpirationComplete)
    return [event for event in events if event.data.order_id == order_id]
