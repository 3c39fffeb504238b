"""Batched consumers and relay: events/s and CPU per event, one at a time vs batched.

Run with ``uv run python bench/consumer_batching.py [--events N] [--batch-sizes 1,64,256]
[--rate 100] [--lingers 0,20,50,100]``.
The script starts its own embedded nats-server and PostgreSQL (127.0.0.1, in a
temporary directory) and stops them when it finishes or fails.

Two measurements, each configuration against a fresh database and JetStream
namespace, all in one run:

* **consumer** -- ``--events`` ``order:created`` events of distinct orders are in the
  stream before a :class:`ListenerGroup` starts; it drains them through a
  ``transactional`` handler shaped like tickets' (``apply_versioned`` on a replica,
  a conditional update of another row, ``outbox.record`` of the resulting event),
  with ``RetryPolicy.batch_size`` set to each of ``--batch-sizes`` (1 = one event per
  fetch and per transaction, as before batching);
* **relay** -- ``--events`` outbox rows are committed before an :class:`OutboxRelay`
  publishes them all: ``one-by-one`` awaits each publish's ack before the next (as
  before), ``pipelined`` is the relay as it is.

* **steady** -- events published one by one at ``--rate`` per second (about 20 s
  of them) while the same consumer (batch 64) runs, once with each listener linger
  of ``--lingers`` (``EVENT_BATCH_LINGER_MS``), and once with no consumer at all
  (the publishing alone, to subtract from the bench column); also each event's lag
  from its envelope's time to its handler's run, p50 and p99.

Time is from the start of the drain to its end. CPU is utime + stime from
``/proc`` (psutil) of this process (the consumer or relay), the PostgreSQL server
and its backends, and nats-server, over the drain, divided by the events; other
processes on the machine do not count, but they do slow the wall clock.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from uuid import UUID, uuid4

import asyncpg
import psutil
from nats.js.api import PubAck
from sqlalchemy import String, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from ticketing_common.db import Database, ServiceBase, plain_url
from ticketing_common.embedded import EmbeddedStack
from ticketing_common.events import outbox
from ticketing_common.events.bus import EventBus, Outgoing
from ticketing_common.events.contracts import (
    Envelope,
    OrderCreated,
    OrderStatus,
    PricedTicketRef,
    TicketUpdated,
)
from ticketing_common.events.listener import ListenerGroup, RetryPolicy, transactional
from ticketing_common.events.outbox import OutboxRelay
from ticketing_common.events.replica import apply_versioned
from ticketing_common.testing import wait_until

DRAIN_TIMEOUT_SECONDS = 600.0


class BenchBase(ServiceBase):
    pass


class OrderRef(BenchBase):
    __tablename__ = "order_refs"
    id: Mapped[UUID] = mapped_column(primary_key=True)
    version: Mapped[int]
    ticket_id: Mapped[UUID]


class Ticket(BenchBase):
    __tablename__ = "tickets"
    id: Mapped[UUID] = mapped_column(primary_key=True)
    version: Mapped[int]
    title: Mapped[str] = mapped_column(String(200))
    order_id: Mapped[UUID | None]


async def on_order_created(event: Envelope[OrderCreated], session: AsyncSession) -> None:
    """Tickets' handler in miniature: the order's ref, the ticket's lock, its event."""
    order = event.data
    await apply_versioned(
        session, OrderRef, id=order.id, version=order.version, values={"ticket_id": order.ticket.id}
    )
    reserved = (
        await session.execute(
            text(
                "UPDATE tickets SET order_id = :order, version = version + 1"
                " WHERE id = :ticket AND order_id IS NULL RETURNING version, title"
            ),
            {"order": order.id, "ticket": order.ticket.id},
        )
    ).first()
    if reserved is not None:
        await outbox.record(
            session,
            TicketUpdated(
                id=order.ticket.id,
                version=reserved.version,
                title=reserved.title,
                price=order.ticket.price,
                user_id=order.user_id,
                order_id=order.id,
            ),
        )


class OneByOneBus(EventBus):
    """The relay's publishing before pipelining: each publish awaits its ack."""

    async def publish_all(
        self, events: Sequence[Outgoing], *, timeout: float = 5.0
    ) -> list[PubAck | Exception]:
        return [
            await self.publish_event(
                event.subject,
                event.body,
                msg_id=event.msg_id,
                event_type=event.event_type,
                trace_parent=event.trace_parent,
            )
            for event in events
        ]


@dataclass(frozen=True)
class Servers:
    stack: EmbeddedStack

    @property
    def nats_url(self) -> str:
        assert self.stack.nats is not None
        return self.stack.nats.url

    @property
    def postgres_url(self) -> str:
        assert self.stack.postgres is not None
        return self.stack.postgres.url

    def cpu_seconds(self) -> dict[str, float]:
        """CPU so far of this process, PostgreSQL (with its backends) and nats-server."""
        own = psutil.Process()
        times = own.cpu_times()
        cpu = {"bench": times.user + times.system}
        for name, pid in (("postgres", self.postgres_pid()), ("nats", self.nats_pid())):
            root = psutil.Process(pid)
            total = 0.0
            for process in [root, *root.children(recursive=True)]:
                try:
                    times = process.cpu_times()
                except psutil.NoSuchProcess:
                    continue  # ended between the listing and the read
                total += times.user + times.system
            cpu[name] = total
        return cpu

    def postgres_pid(self) -> int:
        assert self.stack.postgres is not None
        pid = self.stack.postgres.pid
        assert pid is not None
        return pid

    def nats_pid(self) -> int:
        assert self.stack.nats is not None
        pid = self.stack.nats.pid
        assert pid is not None
        return pid


@dataclass(frozen=True)
class Result:
    name: str
    events: int
    seconds: float
    cpu: dict[str, float]
    note: str = ""

    def line(self) -> str:
        per_event = {name: seconds * 1000 / self.events for name, seconds in self.cpu.items()}
        return (
            f"| {self.name} | {self.events} | {self.seconds:.2f} | "
            f"{self.events / self.seconds:.0f} | "
            + " | ".join(f"{per_event[name]:.3f}" for name in ("bench", "postgres", "nats"))
            + f" | **{sum(per_event.values()):.3f}** | {self.note} |"
        )


async def fresh(servers: Servers, role: str) -> tuple[Database, str]:
    name = f"bench_{role}_{uuid4().hex[:8]}"
    admin = await asyncpg.connect(plain_url(servers.postgres_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    database = Database(servers.postgres_url.rsplit("/", maxsplit=1)[0] + f"/{name}")
    async with database.engine.begin() as connection:
        await connection.run_sync(outbox.outbox_metadata.create_all)
        await connection.run_sync(BenchBase.metadata.create_all)
    return database, f"b{uuid4().hex[:10]}"


async def measured(
    servers: Servers, name: str, events: int, drain: Callable[[], Awaitable[None]]
) -> Result:
    before = servers.cpu_seconds()
    start = time.perf_counter()
    await asyncio.wait_for(drain(), DRAIN_TIMEOUT_SECONDS)
    seconds = time.perf_counter() - start
    after = servers.cpu_seconds()
    return Result(name, events, seconds, {key: after[key] - before[key] for key in before})


async def consumer(servers: Servers, events: int, batch_size: int) -> Result:
    database, namespace = await fresh(servers, "consumer")
    bus = await EventBus(servers.nats_url, namespace, client_name="bench").connect()
    try:
        orders = await free_tickets_ordered(database, events)
        for chunk in range(0, events, 500):
            await bus.publish_all(
                [
                    Outgoing(
                        bus.subjects.of(OrderCreated.event_type),
                        envelope.to_json(),
                        str(envelope.id),
                        envelope.type.value,
                    )
                    for envelope in map(Envelope.of, orders[chunk : chunk + 500])
                ]
            )
        policy = replace(RetryPolicy(), batch_size=batch_size)
        group = ListenerGroup(bus, "tickets", policy)
        group.add(OrderCreated, transactional(database, on_order_created))
        stopping = asyncio.Event()

        async def drain() -> None:
            task = asyncio.create_task(group.run(stopping))
            await wait_until(lambda: group.handled >= events, timeout=DRAIN_TIMEOUT_SECONDS)
            stopping.set()
            await task

        result = await measured(servers, f"consumer, batch {batch_size}", events, drain)
        async with database.transaction() as session:
            held = await session.scalar(
                text("SELECT count(*) FROM tickets WHERE order_id IS NOT NULL")
            )
        assert held == events, f"{held} of {events} tickets reserved"
        return result
    finally:
        await bus.close()
        await database.dispose()


def orders_for(events: int) -> list[OrderCreated]:
    return [
        OrderCreated(
            id=uuid4(),
            version=0,
            status=OrderStatus.CREATED,
            user_id=uuid4(),
            expires_at=datetime.now(UTC) + timedelta(minutes=15),
            ticket=PricedTicketRef(id=uuid4(), price=Decimal("40.00")),
        )
        for _ in range(events)
    ]


async def free_tickets_ordered(database: Database, events: int) -> list[OrderCreated]:
    """``events`` orders, each of its own free ticket, stored in ``database``."""
    orders = orders_for(events)
    async with database.transaction() as session:
        await session.execute(
            text("INSERT INTO tickets (id, version, title) VALUES (:id, 0, 'Gig')"),
            [{"id": order.ticket.id} for order in orders],
        )
    return orders


async def steady(servers: Servers, events: int, rate: float, linger_ms: float | None) -> Result:
    """``events`` published one by one at ``rate``/s while the consumer runs with the
    given linger (None: no consumer, the publishing alone). Also the latency of each
    event, from its envelope's time to its handler's run."""
    database, namespace = await fresh(servers, "steady")
    bus = await EventBus(servers.nats_url, namespace, client_name="bench").connect()
    try:
        orders = await free_tickets_ordered(database, events)
        lags: list[float] = []

        async def handle(event: Envelope[OrderCreated], session: AsyncSession) -> None:
            lags.append((datetime.now(UTC) - event.time).total_seconds())
            await on_order_created(event, session)

        policy = replace(RetryPolicy(), linger=(linger_ms or 0) / 1000)
        group = ListenerGroup(bus, "tickets", policy)
        group.add(OrderCreated, transactional(database, handle))
        stopping = asyncio.Event()

        async def publish() -> None:
            started = time.perf_counter()
            for index, order in enumerate(orders):
                await asyncio.sleep(max(0.0, started + index / rate - time.perf_counter()))
                envelope = Envelope.of(order)
                await bus.publish_event(
                    bus.subjects.of(OrderCreated.event_type),
                    envelope.to_json(),
                    msg_id=str(envelope.id),
                    event_type=envelope.type.value,
                )

        async def drain() -> None:
            if linger_ms is None:
                await publish()
                return
            task = asyncio.create_task(group.run(stopping))
            await publish()
            await wait_until(lambda: group.handled >= events, timeout=DRAIN_TIMEOUT_SECONDS)
            stopping.set()
            await task

        name = (
            f"steady {rate:.0f}/s, publishing alone"
            if linger_ms is None
            else f"steady {rate:.0f}/s, linger {linger_ms:.0f} ms"
        )
        result = await measured(servers, name, events, drain)
        if lags:
            lags.sort()
            p50, p99 = lags[len(lags) // 2], lags[min(len(lags) - 1, len(lags) * 99 // 100)]
            result = replace(result, note=f"lag p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms")
        return result
    finally:
        await bus.close()
        await database.dispose()


async def relay(servers: Servers, events: int, *, pipelined: bool) -> Result:
    database, namespace = await fresh(servers, "relay")
    bus_type = EventBus if pipelined else OneByOneBus
    bus = await bus_type(servers.nats_url, namespace, client_name="bench").connect()
    try:
        for chunk in range(0, events, 500):
            async with database.transaction() as session:
                for _ in range(min(500, events - chunk)):
                    await outbox.record(
                        session,
                        TicketUpdated(
                            id=uuid4(),
                            version=1,
                            title="Gig",
                            price=Decimal("40.00"),
                            user_id=uuid4(),
                        ),
                    )
        publisher = OutboxRelay(database, bus)

        async def drain() -> None:
            assert await publisher.publish_pending() == events

        name = "relay, pipelined" if pipelined else "relay, one by one"
        result = await measured(servers, name, events, drain)
        stream = await bus.js.stream_info(bus.subjects.stream)
        assert stream.state.messages == events
        return result
    finally:
        await bus.close()
        await database.dispose()


async def run(
    servers: Servers,
    events: int,
    batch_sizes: list[int],
    rate: float,
    lingers: list[float],
) -> None:
    print(f"events={events} cpus={os.cpu_count()} load before={load()}")
    print(
        "\n| configuration | events | seconds | events/s | CPU ms/event: bench | postgres "
        "| nats | all | |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    # A warm-up of each kind (imports, pools, server caches): not shown.
    await consumer(servers, 200, max(batch_sizes))
    await relay(servers, 200, pipelined=True)
    for batch_size in batch_sizes:
        print((await consumer(servers, events, batch_size)).line())
    for pipelined in (False, True):
        print((await relay(servers, events, pipelined=pipelined)).line())
    if lingers:
        steady_events = min(events, int(rate * 20))  # about 20 s each
        print((await steady(servers, steady_events, rate, None)).line())
        for linger in lingers:
            print((await steady(servers, steady_events, rate, linger)).line())
    print(f"\nload after={load()}")


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=2000, help="events per drain (2000)")
    parser.add_argument(
        "--batch-sizes", default="1,64,256", help="consumer batch sizes to compare (1,64,256)"
    )
    parser.add_argument(
        "--rate", type=float, default=100, help="events/s of the steady stream (100)"
    )
    parser.add_argument(
        "--lingers",
        default="0,20,50,100",
        help="listener lingers (ms) to compare on the steady stream (0,20,50,100; empty: none)",
    )
    args = parser.parse_args()
    batch_sizes = [int(size) for size in args.batch_sizes.split(",")]
    lingers = [float(linger) for linger in args.lingers.split(",") if linger]
    if args.events < 1 or min(batch_sizes) < 1:
        parser.error("--events and every batch size must be at least 1")
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="batching-bench-", ignore_cleanup_errors=True) as tmp:
        stack = EmbeddedStack(Path(tmp))
        try:
            stack.start(nats=True, postgres=True, redis=False)
            asyncio.run(run(Servers(stack), args.events, batch_sizes, args.rate, lingers))
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
