"""Fixtures: expiration served over real HTTP on real NATS and Redis, a fresh namespace
(streams and arq queue) per test (the shared harness,
``ticketing_common.testing.service``); orders are simulated by publishing order:created."""

from __future__ import annotations

from collections.abc import AsyncIterator
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
from ticketing_common.spec import ServiceSpec
from ticketing_common.testing import MakeSettings, Serve, ServedApp, published_so_far
from ticketing_expiration.app import SPEC
from ticketing_expiration.jobs import JobWorker
from ticketing_expiration.settings import Settings

ServeExpiration = Serve


@pytest.fixture(scope="session")
def service_spec() -> ServiceSpec[Settings]:
    return SPEC


@pytest.fixture
async def make_settings(make_settings: MakeSettings, redis_url: str) -> AsyncIterator[MakeSettings]:
    """The harness' settings; the namespace's queue and its job/result keys go with the
    test (after the app stopped)."""
    yield make_settings
    queue = make_settings().queue_name
    redis = Redis.from_url(redis_url)
    try:
        keys = [key async for key in redis.scan_iter(match=f"*{queue}*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()  # type: ignore[attr-defined]


@pytest.fixture
def serve_expiration(serve: Serve) -> ServeExpiration:
    return serve


@pytest.fixture
def expiration(served: ServedApp) -> ServedApp:
    return served


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
