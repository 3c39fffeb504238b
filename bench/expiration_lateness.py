"""Expiration lateness benchmark: how late expiration:complete fires after expiresAt.

Run with ``uv run python bench/expiration_lateness.py [--orders N]``. The script
starts its own embedded nats-server and Redis (127.0.0.1, in a temporary
directory) and stops them by the PIDs it started when it finishes or fails.

Every order goes through the real path: order:created published on JetStream ->
the expiration service (``ticketing_expiration.app.create_app``, served by
uvicorn in this process) -> an arq job in Redis deferred to expiresAt -> the job
publishes expiration:complete -> a JetStream subscriber in this process. The N
orders are published first, their expiresAt spread evenly over ``--spread``
seconds starting ``--lead`` seconds ahead.

Lateness is measured two ways, both against expiresAt on the same wall clock:

* ``service``: job start - expiresAt, as the service itself reports it (``GET /stats``);
* ``end-to-end``: expiration:complete received by the subscriber - expiresAt.

Two configurations in the same run, each with a fresh namespace (streams, queue):
``configured`` (``EXPIRATION_POLL_SECONDS`` at the service's default) and
``baseline`` (arq's default poll delay, 0.5 s). ``--poll`` sets the configured one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from uuid import UUID, uuid4

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg

from ticketing_common.embedded import EmbeddedStack
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import (
    Envelope,
    ExpirationComplete,
    OrderCreated,
    OrderStatus,
    PricedTicketRef,
    decode,
)
from ticketing_common.testing import serve_app
from ticketing_expiration.app import create_app
from ticketing_expiration.service import percentile
from ticketing_expiration.settings import Settings

ARQ_DEFAULT_POLL_SECONDS = 0.5
DELIVERY_MARGIN_SECONDS = 30.0


@dataclass
class Figures:
    count: int
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None

    @classmethod
    def of(cls, values: list[float]) -> Figures:
        return cls(
            len(values),
            percentile(values, 50),
            percentile(values, 90),
            percentile(values, 99),
            max(values, default=None),
        )


@dataclass
class Result:
    name: str
    poll_seconds: float
    sent: int
    service: Figures
    end_to_end: Figures


class Receiver:
    """Wall-clock instant each order's expiration:complete reached this process."""

    def __init__(self) -> None:
        self.received: dict[UUID, float] = {}
        self.duplicates = 0
        self._expected = 0
        self._done = asyncio.Event()

    def expect(self, total: int) -> None:
        self._expected = total

    async def on_message(self, msg: Msg) -> None:
        now = time.time()
        order_id = decode(msg.data, ExpirationComplete).data.order_id
        if order_id in self.received:
            self.duplicates += 1
        self.received.setdefault(order_id, now)
        if len(self.received) >= self._expected:
            self._done.set()

    async def wait_all(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._done.wait(), timeout)
        except TimeoutError:
            return False
        return True


def order(expires_at: datetime) -> OrderCreated:
    return OrderCreated(
        id=uuid4(),
        version=0,
        status=OrderStatus.CREATED,
        user_id=uuid4(),
        expires_at=expires_at,
        ticket=PricedTicketRef(id=uuid4(), price=Decimal("20.00")),
    )


async def measure(
    stack: EmbeddedStack, name: str, *, poll_seconds: float, orders: int, lead: float, spread: float
) -> Result:
    assert stack.nats is not None
    assert stack.redis is not None
    namespace = f"bench{uuid4().hex[:10]}"
    settings = Settings(
        REDIS_URL=stack.redis.url,
        NATS_URL=stack.nats.url,
        NATS_NAMESPACE=namespace,
        ENVIRONMENT="test",
        LOG_LEVEL="WARNING",  # one log line per firing would be the benchmark's own load
        EXPIRATION_POLL_SECONDS=poll_seconds,
    )
    bus = await EventBus(stack.nats.url, namespace, client_name="bench-orders").connect()
    subscriber: Client | None = None
    try:
        receiver = Receiver()
        receiver.expect(orders)
        subscriber = await nats.connect(stack.nats.url, name="bench-subscriber", connect_timeout=5)
        await subscriber.jetstream().subscribe(
            bus.subjects.of(ExpirationComplete.event_type),
            stream=bus.subjects.stream,
            cb=receiver.on_message,
            ordered_consumer=True,
        )
        async with serve_app(create_app(settings)) as served, served.client() as client:
            start = datetime.now(UTC) + timedelta(seconds=lead)
            step = spread / orders
            events = [order(start + timedelta(seconds=i * step)) for i in range(orders)]
            for event in events:
                await bus.publish(Envelope.of(event))
            publish_done = datetime.now(UTC)
            if publish_done > start:
                print(f"  ! {name}: publishing took longer than --lead; raise it")
            if not await receiver.wait_all(lead + spread + DELIVERY_MARGIN_SECONDS):
                print(f"  ! {name}: {orders - len(receiver.received)} expirations not received")
            stats = (await client.get("/stats")).json()
        expires = {event.id: event.expires_at.timestamp() for event in events}
        end_to_end = [(at - expires[oid]) * 1000 for oid, at in receiver.received.items()]
        if receiver.duplicates:
            print(f"  ! {name}: {receiver.duplicates} duplicate expirations received")
        service = Figures(stats["count"], stats["p50"], stats["p90"], stats["p99"], stats["max"])
        return Result(name, poll_seconds, orders, service, Figures.of(end_to_end))
    finally:
        if subscriber is not None:
            with contextlib.suppress(Exception):
                await subscriber.drain()
        with contextlib.suppress(Exception):
            for stream in (bus.subjects.stream, bus.subjects.dead_letter_stream):
                await bus.js.delete_stream(stream)
        await bus.close()


def fmt(value: float | None) -> str:
    return f"{value:>9.1f}" if value is not None else f"{'-':>9}"


def print_table(results: list[Result]) -> None:
    header = (
        f"{'config':<11} {'poll s':>6} {'measure':<11} {'sent':>5} {'count':>5} "
        f"{'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} {'max ms':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        for label, figures in (("service", r.service), ("end-to-end", r.end_to_end)):
            print(
                f"{r.name:<11} {r.poll_seconds:>6g} {label:<11} {r.sent:>5} {figures.count:>5} "
                f"{fmt(figures.p50)} {fmt(figures.p90)} {fmt(figures.p99)} {fmt(figures.max)}"
            )


def ratio(baseline: float | None, configured: float | None) -> str:
    if baseline is None or configured is None or configured <= 0:
        return "n/a"
    return f"x{baseline / configured:.1f}"


async def run(
    orders: int, lead: float, spread: float, poll: float | None, stack: EmbeddedStack
) -> None:
    configured_poll = poll or Settings.model_fields["EXPIRATION_POLL_SECONDS"].default
    print(
        f"orders={orders} expiresAt spread evenly over {spread:g} s starting {lead:g} s ahead; "
        f"configured poll {configured_poll:g} s, baseline poll {ARQ_DEFAULT_POLL_SECONDS:g} s "
        "(arq's default)"
    )
    configured = await measure(
        stack, "configured", poll_seconds=configured_poll, orders=orders, lead=lead, spread=spread
    )
    baseline = await measure(
        stack,
        "baseline",
        poll_seconds=ARQ_DEFAULT_POLL_SECONDS,
        orders=orders,
        lead=lead,
        spread=spread,
    )
    print(
        "\nLateness (service = job start - expiresAt, from GET /stats; "
        "end-to-end = expiration:complete received - expiresAt)"
    )
    print_table([configured, baseline])
    for label, base, conf in (
        ("service", baseline.service, configured.service),
        ("end-to-end", baseline.end_to_end, configured.end_to_end),
    ):
        print(
            f"baseline/configured {label}: p50 {ratio(base.p50, conf.p50)}, "
            f"p99 {ratio(base.p99, conf.p99)}, max {ratio(base.max, conf.max)}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--orders", type=int, default=250, help="orders per config (default 250)")
    parser.add_argument(
        "--lead", type=float, default=2.0, help="first expiresAt this many seconds ahead"
    )
    parser.add_argument(
        "--spread", type=float, default=3.0, help="expiresAt spread over this many seconds"
    )
    parser.add_argument(
        "--poll",
        type=float,
        default=None,
        help="configured poll delay in seconds (default: the service's EXPIRATION_POLL_SECONDS)",
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="abort the whole run after this many seconds"
    )
    args = parser.parse_args()
    if args.orders < 1 or args.spread <= 0 or args.lead < 0 or (args.poll or 1) <= 0:
        parser.error("--orders must be >= 1, --spread > 0, --lead >= 0, --poll > 0")
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="expiration-bench-", ignore_cleanup_errors=True) as tmp:
        stack = EmbeddedStack(Path(tmp))
        try:
            stack.start(nats=True, postgres=False, redis=True)
            print(
                f"nats pid={stack.nats.pid if stack.nats else None} "
                f"redis pid={stack.redis.pid if stack.redis else None}"
            )
            coro = run(args.orders, args.lead, args.spread, args.poll, stack)
            asyncio.run(asyncio.wait_for(coro, args.timeout))
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
