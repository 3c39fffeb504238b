"""Publishing and consuming through real NATS JetStream."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import pytest
from nats.js.errors import NotFoundError
from sqlalchemy import text
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing_common.db import Database
from ticketing_common.embedded import HOST, free_port
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import (
    PAYLOADS,
    Envelope,
    EventType,
    OrderCreated,
    OrderStatus,
    PricedTicketRef,
    TicketCreated,
    decode,
)
from ticketing_common.events.listener import (
    ListenerGroup,
    RetryLater,
    RetryPolicy,
    replay_dead_letters,
    transactional,
)
from ticketing_common.testing import wait_until

FAST = RetryPolicy(max_deliveries=3, base_delay=0.05, max_delay=0.2, ack_wait=5)


def ticket_created(version: int = 0) -> TicketCreated:
    return TicketCreated(
        id=uuid4(), version=version, title="Concert", price=Decimal("20.50"), user_id=uuid4()
    )


@contextlib.asynccontextmanager
async def running(*groups: ListenerGroup) -> AsyncIterator[None]:
    stopping = asyncio.Event()
    tasks = [asyncio.create_task(group.run(stopping)) for group in groups]
    try:
        yield
    finally:
        stopping.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)


def test_every_event_of_the_spec_has_a_contract() -> None:
    assert set(PAYLOADS) == set(EventType)
    assert [status.value for status in OrderStatus] == [
        "created",
        "cancelled",
        "awaiting:payment",
        "complete",
    ]


def test_envelope_serialises_camel_case_payload_with_id_type_and_time() -> None:
    payload = OrderCreated(
        id=uuid4(),
        version=0,
        status=OrderStatus.CREATED,
        user_id=uuid4(),
        expires_at=datetime(2030, 1, 1, tzinfo=UTC),
        ticket=PricedTicketRef(id=uuid4(), price=Decimal("10.00")),
    )
    envelope = Envelope.of(payload)
    raw = envelope.to_json()
    assert b'"type":"order:created"' in raw
    assert b'"userId"' in raw
    assert b'"expiresAt"' in raw
    assert b'"price":10.0' in raw
    assert decode(raw, OrderCreated) == envelope


async def test_published_event_is_consumed_with_its_envelope(bus: EventBus) -> None:
    received: list[Envelope[TicketCreated]] = []

    async def handle(event: Envelope[TicketCreated]) -> None:
        received.append(event)

    group = ListenerGroup(bus, "orders", FAST)
    group.add(TicketCreated, handle)
    sent = Envelope.of(ticket_created())
    async with running(group):
        await bus.publish(sent)
        await wait_until(lambda: received)
    assert received == [sent]


async def test_duplicate_publish_with_same_event_id_is_suppressed(bus: EventBus) -> None:
    sent = Envelope.of(ticket_created())
    first = await bus.publish(sent)
    second = await bus.publish(sent)
    assert second.duplicate
    assert first.seq == second.seq
    info = await bus.js.stream_info(bus.subjects.stream)
    assert info.state.messages == 1


async def test_failing_handler_is_redelivered_then_succeeds(bus: EventBus) -> None:
    attempts: list[UUID] = []

    async def flaky(event: Envelope[TicketCreated]) -> None:
        attempts.append(event.id)
        if len(attempts) < 2:
            raise RuntimeError("database hiccup")

    group = ListenerGroup(bus, "orders", FAST)
    group.add(TicketCreated, flaky)
    async with running(group):
        await bus.publish(Envelope.of(ticket_created()))
        await wait_until(lambda: group.handled)
    assert len(attempts) == 2
    assert group.dead_lettered == 0


async def test_handler_failing_every_time_is_dead_lettered_after_max_deliveries(
    bus: EventBus,
) -> None:
    attempts: list[int] = []

    async def broken(event: Envelope[TicketCreated]) -> None:
        attempts.append(1)
        raise RuntimeError("bug in handler")

    group = ListenerGroup(bus, "orders", FAST)
    group.add(TicketCreated, broken)
    sent = Envelope.of(ticket_created())
    async with running(group):
        await bus.publish(sent)
        await wait_until(lambda: group.dead_lettered)
        await asyncio.sleep(0.5)  # would a further redelivery happen? it must not
    assert len(attempts) == FAST.max_deliveries

    dead = await bus.js.get_last_msg(
        bus.subjects.dead_letter_stream, bus.subjects.dead_letter("orders", sent.type)
    )
    assert dead.headers is not None
    assert "bug in handler" in dead.headers["Ticketing-Error"]
    assert dead.headers["Ticketing-Deliveries"] == str(FAST.max_deliveries)
    assert decode(dead.data or b"", TicketCreated) == sent


async def test_retry_later_is_nacked_and_comes_back(bus: EventBus) -> None:
    attempts: list[int] = []

    async def not_yet(event: Envelope[TicketCreated]) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RetryLater("version gap", delay=0.05)

    group = ListenerGroup(bus, "orders", FAST)
    group.add(TicketCreated, not_yet)
    async with running(group):
        await bus.publish(Envelope.of(ticket_created()))
        await wait_until(lambda: group.handled)
    assert len(attempts) == 2


async def test_waiting_for_a_gap_outlasts_the_failure_limit(bus: EventBus) -> None:
    attempts: list[int] = []

    async def gap_then_filled(event: Envelope[TicketCreated]) -> None:
        attempts.append(1)
        if len(attempts) <= FAST.max_deliveries + 2:
            raise RetryLater("version gap", delay=0.01)

    policy = RetryPolicy(max_deliveries=3, max_waits=10, base_delay=0.01, max_delay=0.05)
    group = ListenerGroup(bus, "orders", policy)
    group.add(TicketCreated, gap_then_filled)
    async with running(group):
        await bus.publish(Envelope.of(ticket_created()))
        await wait_until(lambda: group.handled)
    assert len(attempts) == FAST.max_deliveries + 3
    assert group.dead_lettered == 0


async def test_a_wait_with_its_own_max_delay_is_never_nacked_for_longer(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    attempts: list[int] = []

    async def waiting(event: Envelope[TicketCreated]) -> None:
        attempts.append(1)
        if len(attempts) <= 6:
            raise RetryLater("held by another", delay=0.01, max_delay=0.02)

    # Under the policy's cap alone the waits would double to 0.32 s.
    policy = RetryPolicy(max_deliveries=3, max_waits=10, base_delay=0.01, max_delay=30)
    group = ListenerGroup(bus, "orders", policy)
    group.add(TicketCreated, waiting)
    with caplog.at_level(logging.INFO, logger="ticketing.listener"):
        async with running(group):
            await bus.publish(Envelope.of(ticket_created()))
            await wait_until(lambda: group.handled)
    retries = [record for record in caplog.records if record.getMessage() == "will retry"]
    delays = [record.__dict__["delay"] for record in retries]
    assert delays == [0.01, 0.02, 0.02, 0.02, 0.02, 0.02]
    assert len(attempts) == 7


async def select_one(event: Envelope[TicketCreated], session: AsyncSession) -> None:
    await session.execute(text("SELECT 1"))


async def test_a_handler_whose_database_refuses_connections_waits_instead_of_failing() -> None:
    nowhere = Database(f"postgresql://ticketing:secret@{HOST}:{free_port()}/ticketing")
    try:
        with pytest.raises(RetryLater, match="database unavailable"):
            await transactional(nowhere, select_one)(Envelope.of(ticket_created()))
    finally:
        await nowhere.dispose()


async def test_a_handler_whose_connection_dies_mid_transaction_waits_instead_of_failing(
    database_url: str,
) -> None:
    async def killed(event: Envelope[TicketCreated], session: AsyncSession) -> None:
        # The server ends this very connection, as a restart of PostgreSQL would.
        await session.execute(text("SELECT pg_terminate_backend(pg_backend_pid())"))

    database = Database(database_url, pool_size=1)
    try:
        with pytest.raises(RetryLater, match="database unavailable"):
            await transactional(database, killed)(Envelope.of(ticket_created()))
        await transactional(database, select_one)(Envelope.of(ticket_created()))
    finally:
        await database.dispose()


async def test_a_handler_that_fails_on_a_reachable_database_still_fails(database_url: str) -> None:
    async def bug(event: Envelope[TicketCreated], session: AsyncSession) -> None:
        await session.execute(text("SELECT no_such_column FROM no_such_table"))

    database = Database(database_url, pool_size=1)
    try:
        with pytest.raises(ProgrammingError, match="no_such_table"):
            await transactional(database, bug)(Envelope.of(ticket_created()))
    finally:
        await database.dispose()


async def test_malformed_event_goes_straight_to_dead_letters(bus: EventBus) -> None:
    async def handle(event: Envelope[TicketCreated]) -> None:
        raise AssertionError("must not be called")

    group = ListenerGroup(bus, "orders", FAST)
    group.add(TicketCreated, handle)
    async with running(group):
        await bus.publish_raw(
            bus.subjects.of(EventType.TICKET_CREATED), b'{"not": "an event"}', msg_id="junk"
        )
        await wait_until(lambda: group.dead_lettered)
    assert group.handled == 0


async def test_dead_letters_can_be_replayed_once_the_handler_is_fixed(bus: EventBus) -> None:
    fixed = False
    handled: list[UUID] = []

    async def handler(event: Envelope[TicketCreated]) -> None:
        if not fixed:
            raise RuntimeError("bug")
        handled.append(event.id)

    group = ListenerGroup(bus, "orders", FAST)
    group.add(TicketCreated, handler)
    sent = Envelope.of(ticket_created())
    async with running(group):
        await bus.publish(sent)
        await wait_until(lambda: group.dead_lettered)
        fixed = True
        replayed = await replay_dead_letters(bus, "orders", EventType.TICKET_CREATED)
        await wait_until(lambda: handled)
    assert replayed == 1
    assert handled == [sent.id]
    info = await bus.js.stream_info(bus.subjects.dead_letter_stream)
    assert info.state.messages == 0


async def test_two_replicas_in_one_queue_group_handle_each_event_exactly_once(
    bus: EventBus,
) -> None:
    handled_by: dict[UUID, list[str]] = {}

    def handler_for(replica: str):  # type: ignore[no-untyped-def]
        async def handle(event: Envelope[TicketCreated]) -> None:
            handled_by.setdefault(event.data.id, []).append(replica)
            await asyncio.sleep(0.005)  # let the other replica take its share

        return handle

    # Small fetches, so that one replica's fetch cannot take all the events at once.
    policy = replace(FAST, batch_size=4)
    first = ListenerGroup(bus, "orders", policy)
    first.add(TicketCreated, handler_for("a"))
    second = ListenerGroup(bus, "orders", policy)
    second.add(TicketCreated, handler_for("b"))
    events = [Envelope.of(ticket_created()) for _ in range(60)]
    async with running(first, second):
        await asyncio.gather(*(bus.publish(event) for event in events))
        await wait_until(lambda: first.handled + second.handled >= len(events))
        await asyncio.sleep(0.5)  # any second delivery would show up now
    assert sorted(handled_by) == sorted(event.data.id for event in events)
    assert all(len(replicas) == 1 for replicas in handled_by.values())
    assert first.handled > 0
    assert second.handled > 0


async def test_each_service_gets_its_own_copy_of_an_event(bus: EventBus) -> None:
    seen: dict[str, int] = {"tickets": 0, "payments": 0}

    def counter(service: str):  # type: ignore[no-untyped-def]
        async def handle(event: Envelope[TicketCreated]) -> None:
            seen[service] += 1

        return handle

    groups = []
    for service in seen:
        group = ListenerGroup(bus, service, FAST)
        group.add(TicketCreated, counter(service))
        groups.append(group)
    async with running(*groups):
        await bus.publish(Envelope.of(ticket_created()))
        await wait_until(lambda: all(seen.values()))
    assert seen == {"tickets": 1, "payments": 1}


async def test_paused_consumer_holds_events_until_it_is_resumed(bus: EventBus) -> None:
    received: list[Envelope[TicketCreated]] = []

    async def handle(event: Envelope[TicketCreated]) -> None:
        received.append(event)

    group = ListenerGroup(bus, "orders", FAST)
    group.add(TicketCreated, handle)
    sent = Envelope.of(ticket_created())
    async with running(group):
        durable = group.durable_name(EventType.TICKET_CREATED)

        async def consumer_exists() -> bool:
            try:
                await bus.js.consumer_info(bus.subjects.stream, durable)
            except NotFoundError:
                return False
            return True

        await wait_until(consumer_exists)
        assert await bus.pause_consumer(durable, datetime.now(UTC) + timedelta(minutes=5))
        await bus.publish(sent)
        await asyncio.sleep(1.0)  # long enough for a delivery, had there been one
        assert received == []

        assert not await bus.pause_consumer(durable, None)
        await wait_until(lambda: received)
    assert received == [sent]


async def test_a_stop_lets_the_handler_in_flight_finish_and_ack_its_event(bus: EventBus) -> None:
    entered = asyncio.Event()
    release = asyncio.Event()

    async def handle(event: Envelope[TicketCreated]) -> None:
        entered.set()
        await release.wait()

    group = ListenerGroup(bus, "orders", FAST)
    group.add(TicketCreated, handle)
    stopping = asyncio.Event()
    run = asyncio.create_task(group.run(stopping))
    await bus.publish(Envelope.of(ticket_created()))
    await asyncio.wait_for(entered.wait(), timeout=10)
    stopping.set()
    await asyncio.sleep(0.1)
    assert not run.done()  # still handling the event it took
    release.set()
    await asyncio.wait_for(run, timeout=10)
    assert group.handled == 1
    info = await bus.js.consumer_info(
        bus.subjects.stream, group.durable_name(TicketCreated.event_type)
    )
    assert info.num_ack_pending == 0
    assert info.num_pending == 0


async def test_an_event_published_after_a_stop_goes_to_the_next_consumer_at_once(
    bus: EventBus,
) -> None:
    # An ack wait far beyond the test's wait: an event the stopped group's last fetch
    # had swallowed would come back only after it.
    policy = RetryPolicy(ack_wait=300)
    handled_by: list[str] = []

    def handler_for(replica: str):  # type: ignore[no-untyped-def]
        async def handle(event: Envelope[TicketCreated]) -> None:
            handled_by.append(replica)

        return handle

    first = ListenerGroup(bus, "orders", policy)
    first.add(TicketCreated, handler_for("first"))
    async with running(first):
        await bus.publish(Envelope.of(ticket_created()))
        await wait_until(lambda: first.handled == 1)
    # Stopped while its next fetch waited for events.
    await bus.publish(Envelope.of(ticket_created()))
    second = ListenerGroup(bus, "orders", policy)
    second.add(TicketCreated, handler_for("second"))
    async with running(second):
        await wait_until(lambda: second.handled == 1, timeout=20)
    assert handled_by == ["first", "second"]
