"""order:created schedules a job at expiresAt; the job publishes expiration:complete
(SPEC §4 flow 1-2, §5): once per order, even for a past expiresAt, across restarts."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from uuid import uuid4

import pytest

from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import Envelope, ExpirationComplete
from ticketing_common.testing import ServedApp, published_so_far, wait_until
from ticketing_expiration.repository import JobStore
from ticketing_expiration.service import expiration_event_id

from .conftest import ServeExpiration, expirations_of, handled, order_created, worker_of


async def test_order_created_leads_to_expiration_complete_with_an_event_id_from_the_order(
    expiration: ServedApp, bus: EventBus
) -> None:
    order = order_created(expires_in=1)
    await bus.publish(Envelope.of(order))

    [event] = await wait_until(lambda: expirations_of(bus, order.id))

    assert event.data.order_id == order.id
    assert event.id == expiration_event_id(order.id)
    assert event.id != expiration_event_id(uuid4())


async def test_the_same_order_created_delivered_twice_expires_the_order_once(
    expiration: ServedApp, bus: EventBus
) -> None:
    order = order_created(expires_in=1)
    # Two deliveries of the same order under different event ids: the broker's
    # de-duplication cannot help here, only the job id can.
    await bus.publish(Envelope.of(order))
    await bus.publish(Envelope.of(order))
    await wait_until(lambda: handled(expiration) == 2)

    await wait_until(lambda: expirations_of(bus, order.id))
    # Past expiresAt plus a margin in which a second job would have run too.
    await asyncio.sleep(max(0.0, (order.expires_at - datetime.now(UTC)).total_seconds()) + 1.5)

    assert len(await expirations_of(bus, order.id)) == 1
    assert worker_of(expiration).fired == 1  # one job ran, not two de-duplicated by the broker


async def test_redelivery_after_the_job_ran_schedules_nothing(
    expiration: ServedApp, bus: EventBus
) -> None:
    order = order_created(expires_in=-1)
    await bus.publish(Envelope.of(order))
    await wait_until(lambda: worker_of(expiration).fired == 1)

    await bus.publish(Envelope.of(order))  # a late redelivery: the job's result is kept
    await wait_until(lambda: handled(expiration) == 2)
    await asyncio.sleep(1.0)

    assert worker_of(expiration).fired == 1
    assert len(await expirations_of(bus, order.id)) == 1


async def test_a_redis_that_forgot_the_scheduling_script_still_schedules(
    expiration: ServedApp, bus: EventBus
) -> None:
    first, second = order_created(expires_in=-1), order_created(expires_in=-1)
    await bus.publish(Envelope.of(first))
    await wait_until(lambda: expirations_of(bus, first.id))
    # A restarted Redis keeps its data (the jobs) but not the scripts it had loaded.
    await expiration.component(JobStore).pool.script_flush()
    await bus.publish(Envelope.of(second))

    [event] = await wait_until(lambda: expirations_of(bus, second.id))

    assert event.id == expiration_event_id(second.id)


# A month old: older than how long arq would keep a job key by default.
@pytest.mark.parametrize("expires_in", [-60, -30 * 24 * 3600], ids=["minute", "month"])
async def test_order_created_whose_expires_at_is_past_fires_at_once(
    expiration: ServedApp, bus: EventBus, expires_in: float
) -> None:
    order = order_created(expires_in=expires_in)
    await bus.publish(Envelope.of(order))

    [event] = await wait_until(lambda: expirations_of(bus, order.id))

    assert event.id == expiration_event_id(order.id)
    # Lateness is job start - expiresAt, so a minute at least.
    async with expiration.client() as client:
        stats = (await client.get("/stats")).json()
    assert stats["count"] == 1
    assert stats["max"] >= 60_000


async def test_a_job_that_fell_due_while_the_service_was_down_fires_after_restart(
    serve_expiration: ServeExpiration, bus: EventBus
) -> None:
    order = order_created(expires_in=3)
    async with serve_expiration() as first:
        await bus.publish(Envelope.of(order))
        await wait_until(lambda: handled(first) == 1)  # acked: Redis holds the job
        assert worker_of(first).fired == 0

    # Down past expiresAt: nothing can fire.
    await asyncio.sleep(max(0.0, (order.expires_at - datetime.now(UTC)).total_seconds()) + 0.5)
    assert await expirations_of(bus, order.id) == []

    async with serve_expiration() as second:
        [event] = await wait_until(lambda: expirations_of(bus, order.id))
        assert worker_of(second).fired == 1
    assert event.id == expiration_event_id(order.id)


async def test_a_failed_publish_is_retried_until_the_broker_takes_it(
    expiration: ServedApp, bus: EventBus
) -> None:
    order = order_created(expires_in=1)
    await bus.publish(Envelope.of(order))
    await wait_until(lambda: handled(expiration) == 1)
    # The stream disappears: the job's publish finds no stream and fails.
    await bus.js.delete_stream(bus.subjects.stream)
    worker = worker_of(expiration)

    await wait_until(lambda: worker.failed_attempts >= 1)
    assert worker.fired == 0
    await bus.ensure_streams()

    [event] = await wait_until(lambda: expirations_of(bus, order.id), timeout=30)
    assert event.id == expiration_event_id(order.id)
    assert worker.fired == 1


async def test_shutdown_leaves_scheduled_jobs_in_redis(
    serve_expiration: ServeExpiration, bus: EventBus
) -> None:
    order = order_created(expires_in=3600)
    async with serve_expiration() as served:
        await bus.publish(Envelope.of(order))
        await wait_until(lambda: handled(served) == 1)
        store = served.component(JobStore)
        assert await store.pending() == 1

    # The app closed its connections; a new one finds the job waiting.
    async with serve_expiration() as again:
        assert await again.component(JobStore).pending() == 1
        assert worker_of(again).fired == 0


async def test_stopping_mid_way_loses_no_job_and_runs_none_twice(
    serve_expiration: ServeExpiration, bus: EventBus
) -> None:
    orders = [order_created(expires_in=0.05 * i) for i in range(30)]
    async with serve_expiration() as first:
        for order in orders:
            await bus.publish(Envelope.of(order))
        await wait_until(lambda: worker_of(first).fired >= 1, interval=0.01)
        # Shutdown: stop taking jobs, finish those in flight, leave the rest in Redis.
    fired_before = worker_of(first).fired

    async with serve_expiration() as second:
        await wait_until(lambda: fired_before + worker_of(second).fired >= len(orders))
        await asyncio.sleep(0.5)  # room for a job that would run a second time
        fired_after = worker_of(second).fired

    assert fired_before + fired_after == len(orders)
    events = await published_so_far(bus, ExpirationComplete)
    assert sorted(str(event.data.order_id) for event in events) == sorted(
        str(order.id) for order in orders
    )


async def test_a_batch_of_jobs_goes_at_once_and_each_known_one_is_refused(
    expiration: ServedApp,
) -> None:
    store = expiration.component(JobStore)
    known = order_created(expires_in=3600)
    assert await store.schedule(known.id, known.expires_at)
    # And Redis forgot the script since (a restart): the batch loads it and goes again.
    await store.pool.script_flush()
    fresh = [order_created(expires_in=3600) for _ in range(4)]
    batch = [fresh[0], known, *fresh[1:], fresh[0]]

    scheduled = await store.schedule_all([store.job(o.id, o.expires_at) for o in batch])

    # New, known, the three others new, and the first one again: known by then.
    assert scheduled == [True, False, True, True, True, False]
    assert await store.pending() == 5


async def test_a_burst_of_orders_with_a_repeat_expires_each_order_once(
    expiration: ServedApp, bus: EventBus
) -> None:
    """Published at once, so the listener fetches them in batches and schedules each
    batch in one round trip: every order expires, once, the repeated one too."""
    orders = [order_created(expires_in=-1) for _ in range(20)]
    for order in [*orders, orders[3]]:
        await bus.publish(Envelope.of(order))
    await wait_until(lambda: handled(expiration) == 21)
    await wait_until(lambda: worker_of(expiration).fired == 20)
    await asyncio.sleep(1.0)  # a second job of the repeated order would have run by now

    assert worker_of(expiration).fired == 20
    for order in orders:
        assert len(await expirations_of(bus, order.id)) == 1
