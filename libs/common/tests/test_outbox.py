"""The transactional outbox: nothing committed is lost, nothing rolled back is sent."""

from __future__ import annotations

import asyncio
import signal
import sys
from decimal import Decimal
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from sqlalchemy import func, select, text

from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import Envelope, TicketCreated, decode
from ticketing_common.events.outbox import OutboxRelay, outbox_table, record
from ticketing_common.metrics import Metrics
from ticketing_common.testing import wait_until


@pytest.fixture
async def database(database: Database) -> Database:
    """The shared outbox database, with a table of the caller's own state."""
    async with database.engine.begin() as connection:
        await connection.execute(text("CREATE TABLE things (id uuid PRIMARY KEY, title text)"))
    return database


def ticket() -> TicketCreated:
    return TicketCreated(
        id=uuid4(), version=0, title="Gig", price=Decimal("12.00"), user_id=uuid4()
    )


async def stream_count(bus: EventBus) -> int:
    info = await bus.js.stream_info(bus.subjects.stream)
    return info.state.messages


async def pending(database: Database) -> int:
    async with database.transaction() as session:
        return int(
            (await session.execute(select(func.count()).select_from(outbox_table))).scalar_one()
        )


async def test_recorded_event_is_published_and_removed_from_the_outbox(
    database: Database, bus: EventBus
) -> None:
    async with database.transaction() as session:
        envelope = await record(session, ticket())
    relay = OutboxRelay(database, bus)
    assert await relay.publish_pending() == 1
    assert await pending(database) == 0
    message = await bus.js.get_last_msg(bus.subjects.stream, bus.subjects.of(envelope.type))
    assert message.headers is not None
    assert message.headers["Nats-Msg-Id"] == str(envelope.id)
    assert decode(message.data or b"", TicketCreated) == envelope


async def test_rolled_back_transaction_publishes_nothing(database: Database, bus: EventBus) -> None:
    async def failing_change() -> None:
        async with database.transaction() as session:
            await record(session, ticket())
            raise RuntimeError("the state change failed")

    with pytest.raises(RuntimeError):
        await failing_change()
    assert await OutboxRelay(database, bus).publish_pending() == 0
    assert await stream_count(bus) == 0


async def test_relay_wakes_on_commit_without_waiting_for_its_poll(
    database: Database, bus: EventBus
) -> None:
    # The poll is an hour away: only LISTEN/NOTIFY can deliver this in time.
    relay = OutboxRelay(database, bus, fallback_poll_seconds=3600)
    stopping = asyncio.Event()
    task = asyncio.create_task(relay.run(stopping))
    try:
        await asyncio.sleep(0.3)  # the relay is idle, waiting on its notification
        async with database.transaction() as session:
            await record(session, ticket())
        await wait_until(lambda: relay.published == 1, timeout=10)
    finally:
        stopping.set()
        await asyncio.wait_for(task, timeout=10)
    assert await stream_count(bus) == 1


async def test_publishing_the_same_rows_twice_is_deduplicated_by_event_id(
    database: Database, bus: EventBus
) -> None:
    # A relay that published and then died before deleting its rows publishes again.
    async with database.transaction() as session:
        envelope = await record(session, ticket())
    await bus.publish(envelope)
    assert await OutboxRelay(database, bus).publish_pending() == 1
    assert await stream_count(bus) == 1


async def test_process_killed_after_commit_before_publish_loses_nothing(
    database: Database, database_url: str, bus: EventBus
) -> None:
    ticket_id = uuid4()
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("outbox_crash_child.py")),
        database_url,
        str(ticket_id),
    )
    assert await child.wait() == -signal.SIGKILL
    assert await stream_count(bus) == 0  # nothing was published before the crash

    # The service restarts: its relay finds the committed row and publishes it.
    relay = OutboxRelay(database, bus)
    stopping = asyncio.Event()
    task = asyncio.create_task(relay.run(stopping))
    try:
        await wait_until(lambda: relay.published == 1, timeout=10)
    finally:
        stopping.set()
        await asyncio.wait_for(task, timeout=10)
    message = await bus.js.get_last_msg(
        bus.subjects.stream, bus.subjects.of(TicketCreated.event_type)
    )
    assert decode(message.data or b"", TicketCreated).data.id == ticket_id
    assert await pending(database) == 0


@pytest.mark.parametrize("linger", [0.0, 0.02], ids=["at once", "lingering"])
async def test_many_rows_are_each_published_once_in_commit_order(
    database: Database, bus: EventBus, linger: float
) -> None:
    # Versions of several tickets, committed interleaved, more than one relay batch,
    # while the relay runs: every row once, each ticket's versions in order. The poll is
    # an hour away, so a commit the relay stopped looking for (a short batch ends a run)
    # or slept through (its linger) would never be published.
    ids = [uuid4() for _ in range(10)]
    relay = OutboxRelay(database, bus, fallback_poll_seconds=3600, linger_seconds=linger)
    stopping = asyncio.Event()
    task = asyncio.create_task(relay.run(stopping))
    sent: list[UUID] = []
    try:
        for version in range(30):
            async with database.transaction() as session:
                for ticket_id in ids:
                    payload = ticket().model_copy(update={"id": ticket_id, "version": version})
                    sent.append((await record(session, payload)).id)
        await wait_until(lambda: relay.published == len(sent), timeout=30)
    finally:
        stopping.set()
        await asyncio.wait_for(task, timeout=10)
    assert await stream_count(bus) == len(sent)
    assert await pending(database) == 0
    subscription = await bus.js.pull_subscribe(bus.subjects.all_events, stream=bus.subjects.stream)
    received: list[Envelope[TicketCreated]] = []
    while len(received) < len(sent):
        for message in await subscription.fetch(100, timeout=5):
            received.append(decode(message.data, TicketCreated))
            await message.ack()
    assert [envelope.id for envelope in received] == sent
    for ticket_id in ids:
        versions = [envelope.data.version for envelope in received if envelope.data.id == ticket_id]
        assert versions == list(range(30))


async def test_the_pending_gauge_of_a_stopped_relay_counts_the_rows_again(
    database: Database, bus: EventBus
) -> None:
    metrics = Metrics()
    relay = OutboxRelay(database, bus, metrics=metrics)
    stopping = asyncio.Event()
    task = asyncio.create_task(relay.run(stopping))
    try:
        async with database.transaction() as session:
            await record(session, ticket())
        await wait_until(lambda: relay.published == 1, timeout=10)
        await metrics.refresh()  # idle, listening: known empty
        assert metrics.registry.get_sample_value("ticketing_outbox_pending") == 0
    finally:
        stopping.set()
        await asyncio.wait_for(task, timeout=10)
    # Nobody listens for commits now: a scrape cannot assume the table is empty.
    async with database.transaction() as session:
        await record(session, ticket())
        await record(session, ticket())
    await metrics.refresh()
    assert metrics.registry.get_sample_value("ticketing_outbox_pending") == 2
