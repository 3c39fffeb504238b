"""Batched consumption: a fetch applied in one transaction, acked after its commit.

Each test publishes its events before the listener starts, so its first fetch takes
them all as one batch. The handler (``apply_copy``) applies ``ticket:created`` to a
versioned copy and, only when applied, writes an ``effects`` row with its
transaction id: an event applied twice would show as two rows, a batch shows as
rows sharing one transaction id.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from sqlalchemy import String, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from ticketing_common.db import Database, ServiceBase
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import Envelope, EventType, TicketCreated, decode
from ticketing_common.events.listener import (
    ListenerGroup,
    Pipelined,
    RetryLater,
    RetryPolicy,
    transactional,
)
from ticketing_common.events.replica import (
    Applied,
    Change,
    applied_together,
    apply_change,
    apply_versioned,
)
from ticketing_common.testing import wait_until

POLICY = RetryPolicy(max_deliveries=3, base_delay=0.05, max_delay=0.2, ack_wait=3)


class BatchBase(ServiceBase):
    pass


class Copy(BatchBase):
    __tablename__ = "copies"
    id: Mapped[UUID] = mapped_column(primary_key=True)
    version: Mapped[int]
    title: Mapped[str] = mapped_column(String(200))


async def apply_copy(event: Envelope[TicketCreated], session: AsyncSession) -> None:
    ticket = event.data
    applied = await apply_versioned(
        session, Copy, id=ticket.id, version=ticket.version, values={"title": ticket.title}
    )
    if applied is Applied.APPLIED:
        await session.execute(
            text("INSERT INTO effects (event_id, txid) VALUES (:id, txid_current())"),
            {"id": event.id},
        )


def copy_change(event: Envelope[TicketCreated]) -> Change:
    """What ``apply_copy`` applies, for a batch step (``applied_together``)."""
    ticket = event.data
    return Change(id=ticket.id, version=ticket.version, values={"title": ticket.title})


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    async with db.engine.begin() as connection:
        await connection.run_sync(BatchBase.metadata.create_all)
        await connection.execute(
            text("CREATE TABLE effects (event_id uuid NOT NULL, txid bigint NOT NULL)")
        )
    yield db
    await db.dispose()


def version_of(ticket_id: UUID, version: int, title: str = "Concert") -> Envelope[TicketCreated]:
    return Envelope.of(
        TicketCreated(
            id=ticket_id, version=version, title=title, price=Decimal("5"), user_id=ticket_id
        )
    )


def chains(tickets: int, versions: int) -> list[Envelope[TicketCreated]]:
    """Versions 0.. of several tickets, interleaved as concurrent changes would be."""
    ids = [uuid4() for _ in range(tickets)]
    return [version_of(ticket_id, v) for v in range(versions) for ticket_id in ids]


async def effects(database: Database) -> list[tuple[UUID, int]]:
    async with database.transaction() as session:
        rows = await session.execute(text("SELECT event_id, txid FROM effects"))
        return [(row.event_id, row.txid) for row in rows]


async def copies(database: Database) -> dict[UUID, int]:
    async with database.transaction() as session:
        rows = await session.execute(text("SELECT id, version FROM copies"))
        return {row.id: row.version for row in rows}


async def consumer_settled(bus: EventBus, group: ListenerGroup) -> bool:
    info = await bus.js.consumer_info(
        bus.subjects.stream, group.durable_name(EventType.TICKET_CREATED)
    )
    return (info.num_pending, info.num_ack_pending) == (0, 0)


async def run_until(group: ListenerGroup, done: Callable[[], bool]) -> None:
    stopping = asyncio.Event()
    task = asyncio.create_task(group.run(stopping))
    try:
        await wait_until(done, timeout=30)
    finally:
        stopping.set()
        await asyncio.wait_for(task, timeout=10)


async def test_one_failing_and_one_waiting_event_leave_the_rest_of_their_batch_applied_once(
    bus: EventBus, database: Database
) -> None:
    good = chains(tickets=6, versions=5)
    waiting = version_of(uuid4(), 0, "later")
    poison = version_of(uuid4(), 0, "poison")
    sent = [*good[:10], waiting, *good[10:20], poison, *good[20:]]
    hold = True
    runs: Counter[UUID] = Counter()

    async def handle(event: Envelope[TicketCreated], session: AsyncSession) -> None:
        runs[event.id] += 1
        if event.id == poison.id:
            raise RuntimeError("a bug this event always hits")
        if event.id == waiting.id and hold:
            raise RetryLater("not yet", delay=0.05, max_delay=0.1)
        await apply_copy(event, session)

    for event in sent:
        await bus.publish(event)
    group = ListenerGroup(bus, "orders", POLICY)
    group.add(TicketCreated, transactional(database, handle))
    stopping = asyncio.Event()
    task = asyncio.create_task(group.run(stopping))
    try:
        await wait_until(lambda: group.handled == len(good) and group.dead_lettered == 1)
        hold = False
        await wait_until(lambda: group.handled == len(good) + 1)
        await wait_until(lambda: consumer_settled(bus, group))
    finally:
        stopping.set()
        await asyncio.wait_for(task, timeout=10)

    applied = await effects(database)
    # Every event applied exactly once, the poison one never.
    assert sorted(event_id for event_id, _ in applied) == sorted(
        event.id for event in [*good, waiting]
    )
    # The good ones together, in one transaction, in stream order: no version waited.
    assert len({txid for event_id, txid in applied if event_id != waiting.id}) == 1
    assert set((await copies(database)).values()) == {0, 4}
    assert all(runs[event.id] <= 2 for event in good)  # once, or once more in savepoints
    assert runs[poison.id] >= POLICY.max_deliveries
    dead = await bus.js.get_last_msg(
        bus.subjects.dead_letter_stream,
        bus.subjects.dead_letter("orders", EventType.TICKET_CREATED),
    )
    assert decode(dead.data or b"", TicketCreated).id == poison.id


async def test_a_crash_between_a_batch_commit_and_its_acks_applies_nothing_twice(
    bus: EventBus, database: Database, nats_url: str, namespace: str, database_url: str
) -> None:
    sent = chains(tickets=5, versions=4)
    for event in sent:
        await bus.publish(event)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("listener_batch_child.py")),
        nats_url,
        namespace,
        database_url,
    )
    assert await asyncio.wait_for(child.wait(), timeout=60) == -signal.SIGKILL
    committed = await effects(database)
    assert len(committed) == len(sent)  # the whole batch committed, none of it acked

    # The service restarts: the broker redelivers the batch after its ack wait.
    group = ListenerGroup(bus, "orders", POLICY)
    group.add(TicketCreated, transactional(database, apply_copy))
    await run_until(group, lambda: group.handled == len(sent))
    assert await effects(database) == committed  # every one a duplicate now
    assert set((await copies(database)).values()) == {3}


async def test_a_crash_after_a_batch_step_committed_applies_nothing_twice(
    bus: EventBus, database: Database, nats_url: str, namespace: str, database_url: str
) -> None:
    """The same SIGKILL between commit and acks, with a replica's batch step: the step
    applied each ticket's first version, the handler the rest, all committed, none
    acked. Redelivered after the restart, every change is a duplicate: the step applies
    none, the handler finds each one there."""
    sent = chains(tickets=5, versions=4)
    for event in sent:
        await bus.publish(event)
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(Path(__file__).with_name("listener_batch_child.py")),
        nats_url,
        namespace,
        database_url,
        "together",
    )
    assert await asyncio.wait_for(child.wait(), timeout=60) == -signal.SIGKILL
    committed = await copies(database)
    assert sorted(committed.values()) == [3] * 5  # the whole batch committed, none acked

    claimed: list[int] = []
    outcomes: list[Applied] = []
    step = applied_together(Copy, copy_change)

    async def together(
        events: Sequence[Envelope[TicketCreated]], session: AsyncSession
    ) -> Collection[int]:
        positions = await step(events, session)
        claimed.extend(positions)
        return positions

    async def handle(event: Envelope[TicketCreated], session: AsyncSession) -> None:
        outcomes.append(await apply_change(session, Copy, copy_change(event)))

    group = ListenerGroup(bus, "orders", POLICY)
    group.add(TicketCreated, transactional(database, handle, together=together))
    await run_until(group, lambda: group.handled == len(sent))
    assert claimed == []
    assert outcomes == [Applied.DUPLICATE] * len(sent)
    assert await copies(database) == committed


async def test_a_batch_whose_connection_dies_waits_and_then_applies_each_event_once(
    bus: EventBus, database: Database
) -> None:
    sent = chains(tickets=4, versions=3)
    killed = False

    async def handle(event: Envelope[TicketCreated], session: AsyncSession) -> None:
        nonlocal killed
        await apply_copy(event, session)
        if event.id == sent[5].id and not killed:
            killed = True
            # The server ends this very connection mid-batch, as a restart would.
            await session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))

    for event in sent:
        await bus.publish(event)
    group = ListenerGroup(bus, "orders", POLICY)
    group.add(TicketCreated, transactional(database, handle))
    await run_until(group, lambda: group.handled == len(sent))
    assert killed
    assert group.dead_lettered == 0  # an outage is a wait, not a failure
    assert sorted(event_id for event_id, _ in await effects(database)) == sorted(
        event.id for event in sent
    )
    assert set((await copies(database)).values()) == {2}


async def test_a_fetch_handled_for_longer_than_the_ack_wait_is_not_redelivered_meanwhile(
    bus: EventBus,
) -> None:
    policy = replace(POLICY, ack_wait=2)
    runs: Counter[UUID] = Counter()
    entered = asyncio.Event()

    async def slow(event: Envelope[TicketCreated]) -> None:
        entered.set()
        runs[event.id] += 1
        # Six of them: the last one's turn comes well after the ack wait, and each
        # is far shorter than the ack wait, whenever in its hold it started.
        await asyncio.sleep(0.5)

    async def idle(event: Envelope[TicketCreated]) -> None:
        runs[event.id] += 1

    sent = chains(tickets=6, versions=1)
    for event in sent:
        await bus.publish(event)
    busy = ListenerGroup(bus, "orders", policy)
    busy.add(TicketCreated, slow)
    other = ListenerGroup(bus, "orders", policy)  # another replica, its fetch waiting
    other.add(TicketCreated, idle)
    stopping = asyncio.Event()
    tasks = [asyncio.create_task(busy.run(stopping))]
    try:
        await asyncio.wait_for(entered.wait(), timeout=10)  # the busy one took the batch
        tasks.append(asyncio.create_task(other.run(stopping)))
        await wait_until(lambda: busy.handled + other.handled == len(sent))
        await wait_until(lambda: consumer_settled(bus, busy))
    finally:
        stopping.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
    assert runs == Counter(event.id for event in sent)  # each once: none redelivered
    assert other.handled == 0


async def test_a_stream_consumed_with_a_linger_is_applied_once_each_in_version_order(
    bus: EventBus, database: Database
) -> None:
    """Events published in waves while the listener runs, lingering between fetches of
    more than one: every event applied once, each ticket at its last version, all acked."""
    sent = chains(tickets=8, versions=6)
    group = ListenerGroup(bus, "orders", replace(POLICY, linger=0.05))
    group.add(TicketCreated, transactional(database, apply_copy))
    stopping = asyncio.Event()
    task = asyncio.create_task(group.run(stopping))
    try:
        for start in range(0, len(sent), 6):
            for event in sent[start : start + 6]:
                await bus.publish(event)
            await asyncio.sleep(0.02)  # waves: some land while the listener lingers
        await wait_until(lambda: group.handled == len(sent), timeout=30)
        await wait_until(lambda: consumer_settled(bus, group), timeout=10)
    finally:
        stopping.set()
        await asyncio.wait_for(task, timeout=10)
    applied = await effects(database)
    assert sorted(event_id for event_id, _ in applied) == sorted(event.id for event in sent)
    assert set((await copies(database)).values()) == {5}


async def test_a_batch_step_applies_each_records_first_change_and_the_handler_the_rest(
    bus: EventBus, database: Database
) -> None:
    """A replica's batch step (``applied_together``) with a handler that fails on one
    event: the transaction is rolled back and the batch applied again with savepoints,
    the step first again. Every good event applied, each ticket at its last version,
    the poison one dead-lettered, everything acked; the step took the first version of
    each ticket, the handler the later ones."""
    good = chains(tickets=6, versions=3)
    poison = version_of(uuid4(), 0, "poison")
    sent = [*good[:8], poison, *good[8:]]
    claimed: list[UUID] = []
    handled: list[UUID] = []

    step = applied_together(Copy, copy_change, unless=lambda event: event.id == poison.id)

    async def together(
        events: Sequence[Envelope[TicketCreated]], session: AsyncSession
    ) -> Collection[int]:
        positions = await step(events, session)
        claimed.extend(events[index].id for index in positions)
        return positions

    async def handle(event: Envelope[TicketCreated], session: AsyncSession) -> None:
        if event.id == poison.id:
            raise RuntimeError("a bug this event always hits")
        handled.append(event.id)
        await apply_change(session, Copy, copy_change(event))

    for event in sent:
        await bus.publish(event)
    group = ListenerGroup(bus, "orders", POLICY)
    group.add(TicketCreated, transactional(database, handle, together=together))
    await run_until(group, lambda: group.handled == len(good) and group.dead_lettered == 1)
    await wait_until(lambda: consumer_settled(bus, group))

    # Every ticket at its last version; the poison one never copied.
    assert await copies(database) == {event.data.id: 2 for event in good}
    firsts = {event.id for event in good if event.data.version == 0}
    assert firsts <= set(claimed)  # the step applied every ticket's first version
    assert not set(claimed) & {event.id for event in good if event.data.version > 0}
    assert {event.id for event in good if event.data.version > 0} <= set(handled)


async def pipelined_run(
    bus: EventBus, send: Callable[[Sequence[UUID]], Awaitable[None]], events: int = 10
) -> list[Envelope[TicketCreated]]:
    """``events`` published before a listener with a ``Pipelined`` handler (staging each
    event's id) starts, so its first fetch takes them all; run until all are handled."""
    sent = chains(tickets=events, versions=1)
    for event in sent:
        await bus.publish(event)
    group = ListenerGroup(bus, "orders", POLICY)
    handler: Pipelined[TicketCreated, UUID] = Pipelined(lambda event: event.id, send)
    group.add(TicketCreated, handler)
    await run_until(group, lambda: group.handled == len(sent))
    await wait_until(lambda: consumer_settled(bus, group))
    return sent


async def test_a_pipelined_handler_sends_a_fetched_batch_at_once(bus: EventBus) -> None:
    sends: list[list[UUID]] = []

    async def send(parts: Sequence[UUID]) -> None:
        sends.append(list(parts))

    sent = await pipelined_run(bus, send)

    assert sends == [[event.id for event in sent]]  # one send, in stream order


async def test_a_failed_pipelined_send_is_sent_again_one_event_at_a_time(bus: EventBus) -> None:
    sends: list[list[UUID]] = []

    async def send(parts: Sequence[UUID]) -> None:
        if len(parts) > 1:
            raise RuntimeError("a reply the batch could not take")
        sends.append(list(parts))

    sent = await pipelined_run(bus, send)

    assert sends == [[event.id] for event in sent]


async def test_a_pipelined_send_told_to_wait_has_its_whole_batch_come_back(bus: EventBus) -> None:
    sends: list[list[UUID]] = []
    away = True

    async def send(parts: Sequence[UUID]) -> None:
        nonlocal away
        if away:
            away = False
            raise RetryLater("the store is away", delay=0.05, max_delay=0.1)
        sends.append(list(parts))

    sent = await pipelined_run(bus, send)

    assert sorted(part for parts in sends for part in parts) == sorted(e.id for e in sent)
