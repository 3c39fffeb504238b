"""Outbox relay benchmark: commit -> published-on-JetStream latency and burst throughput.

Run with ``uv run python bench/outbox_latency.py [--events N]``. The script starts
its own embedded nats-server and PostgreSQL (127.0.0.1, in a temporary directory),
and stops them by the PIDs it started when it finishes or fails.

Two relay configurations are measured in the same run, each against a fresh
database and a fresh JetStream namespace:

* ``real``: :class:`OutboxRelay` as services run it, woken by LISTEN/NOTIFY, with
  its 5 s fallback poll;
* ``baseline``: the same class with the NOTIFY listener unavailable and a 0.5 s
  poll interval, i.e. the classic polling outbox.

Latency of one event is the time from its transaction's commit returning to an
ordered JetStream push subscriber in this process receiving it (both taken with
:func:`time.perf_counter`). The steady phase commits one event per transaction at
a fixed pace; the burst phase commits N events back to back and times until the
last one is received.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import tempfile
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from uuid import uuid4

import asyncpg
import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

from ticketing_common.db import Database, plain_url
from ticketing_common.embedded import EmbeddedStack
from ticketing_common.events.bus import MSG_ID, EventBus
from ticketing_common.events.contracts import TicketCreated
from ticketing_common.events.outbox import OutboxRelay, outbox_metadata, record

REAL_FALLBACK_POLL_SECONDS = 5.0
BASELINE_POLL_SECONDS = 0.5
WARMUP_EVENTS = 10
DELIVERY_TIMEOUT_SECONDS = 30.0


class PollingOnlyRelay(OutboxRelay):
    """The classic design: no NOTIFY wake-up, the relay only polls."""

    async def _listen(self) -> asyncpg.Connection | None:
        return None


@dataclass
class Tracker:
    """Commit and receive instants of each event, keyed by event id (= Nats-Msg-Id)."""

    committed: dict[str, float] = field(default_factory=dict)
    received: dict[str, float] = field(default_factory=dict)
    _all_received: asyncio.Event = field(default_factory=asyncio.Event)
    _expected: int = 0

    def expect(self, total: int) -> None:
        """Wait (in :meth:`wait_all`) until ``total`` distinct events have been received."""
        self._expected = total
        self._all_received.clear()
        self._check()

    def _check(self) -> None:
        if self._expected and len(self.received) >= self._expected:
            self._all_received.set()

    async def on_message(self, msg: Msg) -> None:
        now = time.perf_counter()
        msg_id = (msg.headers or {}).get(MSG_ID)
        if msg_id is not None:
            self.received.setdefault(msg_id, now)
            self._check()

    async def wait_all(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._all_received.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def latencies_ms(self, ids: list[str]) -> list[float]:
        return [(self.received[i] - self.committed[i]) * 1000 for i in ids if i in self.received]


@dataclass
class Result:
    name: str
    latencies_ms: list[float]
    sent: int
    seconds: float  # first commit started -> last event received
    commit_seconds: float  # first commit started -> last commit returned

    @property
    def received(self) -> int:
        return len(self.latencies_ms)

    @property
    def throughput(self) -> float:
        return self.received / self.seconds if self.seconds > 0 else float("nan")

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile."""
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        return ordered[rank - 1]


def ticket() -> TicketCreated:
    return TicketCreated(
        id=uuid4(), version=0, title="Bench", price=Decimal("12.00"), user_id=uuid4()
    )


async def commit_one(database: Database, tracker: Tracker) -> str:
    async with database.transaction() as session:
        envelope = await record(session, ticket())
    # The transaction has committed once the context manager exits.
    event_id = str(envelope.id)
    tracker.committed[event_id] = time.perf_counter()
    return event_id


async def create_database(admin_url: str, name: str) -> None:
    connection = await asyncpg.connect(plain_url(admin_url))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


def database_url(admin_url: str, name: str) -> str:
    return admin_url.rsplit("/", maxsplit=1)[0] + f"/{name}"


async def commit_events(
    database: Database, tracker: Tracker, events: int, interval_s: float | None
) -> tuple[list[str], float]:
    """Commit ``events`` one per transaction, paced or back to back; returns ids and start."""
    ids: list[str] = []
    start = time.perf_counter()
    for i in range(events):
        if interval_s is not None:
            delay = start + i * interval_s - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        ids.append(await commit_one(database, tracker))
    return ids, start


async def measure(
    stack: EmbeddedStack,
    name: str,
    *,
    polling_only: bool,
    events: int,
    interval_s: float | None,
) -> Result:
    """One configuration, one phase: fresh database and namespace, relay, subscriber."""
    assert stack.postgres is not None
    assert stack.nats is not None
    suffix = uuid4().hex[:10]
    db_name = f"bench_{suffix}"
    await create_database(stack.postgres.url, db_name)
    database = Database(database_url(stack.postgres.url, db_name))
    bus = EventBus(stack.nats.url, f"bench{suffix}", client_name="bench-relay")
    relay: OutboxRelay
    if polling_only:
        relay = PollingOnlyRelay(database, bus, fallback_poll_seconds=BASELINE_POLL_SECONDS)
    else:
        relay = OutboxRelay(database, bus, fallback_poll_seconds=REAL_FALLBACK_POLL_SECONDS)
    stopping = asyncio.Event()
    task: asyncio.Task[None] | None = None
    subscriber: Client | None = None
    try:
        async with database.engine.begin() as connection:
            await connection.run_sync(outbox_metadata.create_all)
        await bus.connect()
        tracker = Tracker()
        subscriber = await nats.connect(stack.nats.url, name="bench-subscriber", connect_timeout=5)
        await subscriber.jetstream().subscribe(
            bus.subjects.all_events,
            stream=bus.subjects.stream,
            cb=tracker.on_message,
            ordered_consumer=True,
        )
        task = asyncio.create_task(relay.run(stopping))

        # Warm-up: connection pools, consumer and relay loop; not measured.
        tracker.expect(WARMUP_EVENTS)
        await commit_events(database, tracker, WARMUP_EVENTS, None)
        if not await tracker.wait_all(DELIVERY_TIMEOUT_SECONDS):
            raise TimeoutError(f"{name}: warm-up events were not delivered")
        await asyncio.sleep(0.2)  # let the relay settle into its idle wait

        tracker.expect(WARMUP_EVENTS + events)
        ids, start = await commit_events(database, tracker, events, interval_s)
        if not await tracker.wait_all(DELIVERY_TIMEOUT_SECONDS):
            missing = WARMUP_EVENTS + events - len(tracker.received)
            print(f"  ! {name}: {missing} events not delivered in time")
        last = max((tracker.received[i] for i in ids if i in tracker.received), default=start)
        committed = tracker.committed[ids[-1]] - start
        return Result(name, tracker.latencies_ms(ids), events, last - start, committed)
    finally:
        stopping.set()
        if task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, timeout=10)
        if subscriber is not None:
            with contextlib.suppress(Exception):
                await subscriber.drain()
        with contextlib.suppress(Exception):
            await bus.close()
        await database.dispose()


def print_latency_table(title: str, results: list[Result]) -> None:
    print(f"\n{title}")
    header = (
        f"{'config':<10} {'sent':>6} {'recv':>6} {'p50 ms':>9} {'p95 ms':>9} "
        f"{'p99 ms':>9} {'max ms':>9} {'events/s':>9} {'commit s':>9} {'total s':>8}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.name:<10} {r.sent:>6} {r.received:>6} {r.percentile(50):>9.2f} "
            f"{r.percentile(95):>9.2f} {r.percentile(99):>9.2f} "
            f"{max(r.latencies_ms, default=float('nan')):>9.2f} {r.throughput:>9.1f} "
            f"{r.commit_seconds:>9.3f} {r.seconds:>8.3f}"
        )


async def run(stack: EmbeddedStack, events: int, interval_ms: float) -> None:
    interval_s = interval_ms / 1000
    print(
        f"events={events} interval={interval_ms:g} ms  real: LISTEN/NOTIFY + "
        f"{REAL_FALLBACK_POLL_SECONDS:g} s fallback poll  baseline: poll every "
        f"{BASELINE_POLL_SECONDS:g} s, no NOTIFY"
    )
    steady_real = await measure(
        stack, "real", polling_only=False, events=events, interval_s=interval_s
    )
    steady_base = await measure(
        stack, "baseline", polling_only=True, events=events, interval_s=interval_s
    )
    print_latency_table(
        f"Steady: one event per transaction every {interval_ms:g} ms "
        "(latency = commit returned -> JetStream subscriber received)",
        [steady_real, steady_base],
    )
    p50 = steady_base.percentile(50) / steady_real.percentile(50)
    p99 = steady_base.percentile(99) / steady_real.percentile(99)
    print(f"baseline/real: p50 x{p50:.1f}, p99 x{p99:.1f}")

    burst_real = await measure(stack, "real", polling_only=False, events=events, interval_s=None)
    burst_base = await measure(stack, "baseline", polling_only=True, events=events, interval_s=None)
    print_latency_table(
        f"Burst: {events} events committed back to back "
        "(events/s = received / (first commit -> last received))",
        [burst_real, burst_base],
    )
    print(f"burst throughput real/baseline: x{burst_real.throughput / burst_base.throughput:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=300, help="events per phase (default 300)")
    parser.add_argument(
        "--interval-ms", type=float, default=10.0, help="steady pace in ms (default 10)"
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="abort the whole run after this many seconds"
    )
    args = parser.parse_args()
    if args.events < 1:
        parser.error("--events must be at least 1")
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="outbox-bench-", ignore_cleanup_errors=True) as tmp:
        stack = EmbeddedStack(Path(tmp))
        try:
            stack.start(nats=True, postgres=True, redis=False)
            print(
                f"nats pid={stack.nats.pid if stack.nats else None} "
                f"postgres pid={stack.postgres.pid if stack.postgres else None}"
            )
            asyncio.run(asyncio.wait_for(run(stack, args.events, args.interval_ms), args.timeout))
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
