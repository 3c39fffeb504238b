"""Reading what a service published: the events of one type on a test's namespace.

Each call reads the stream from the start through its own ephemeral consumer, so
it sees every event of that type published so far and acks nothing that a
service's durable consumer would miss.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import Envelope, P, SessionRevoked, decode
from ticketing_common.testing.helpers import wait_until


async def published(
    bus: EventBus, payload_type: type[P], count: int, *, timeout: float = 15
) -> list[Envelope[P]]:
    """The first ``count`` events of a type, in stream order; fails after ``timeout`` s."""
    subscription = await bus.js.pull_subscribe(
        bus.subjects.of(payload_type.event_type),
        stream=bus.subjects.stream,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE),
    )
    found: list[Envelope[P]] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(found) < count and loop.time() < deadline:
            try:
                messages = await subscription.fetch(count - len(found), timeout=0.5)
            except (TimeoutError, NatsTimeoutError):
                continue
            found += [decode(message.data, payload_type) for message in messages]
    finally:
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()
    assert len(found) >= count, f"only {len(found)} {payload_type.event_type} events"
    return found


async def published_so_far(bus: EventBus, payload_type: type[P]) -> list[Envelope[P]]:
    """Every event of a type in the stream now, in order (none is waited for)."""
    subscription = await bus.js.pull_subscribe(
        bus.subjects.of(payload_type.event_type),
        stream=bus.subjects.stream,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE),
    )
    found: list[Envelope[P]] = []
    try:
        # A new consumer counts what the stream holds for it: fetch exactly that, rather
        # than learn there is no more from a fetch that times out (a fixed wait per call).
        pending = (await subscription.consumer_info()).num_pending or 0
        while len(found) < pending:
            messages = await subscription.fetch(min(100, pending - len(found)), timeout=5)
            found += [decode(message.data, payload_type) for message in messages]
        return found
    finally:
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()


async def tried_and_not_acked(bus: EventBus, durable: str, *, timeout: float = 15) -> None:
    """Wait until a service's consumer has tried an event and asked for it again.

    What a handler that cannot apply an event *yet* must do (``RetryLater``), as
    the broker sees it: redelivered, still pending, not acked (and so not dropped).
    """

    async def redelivered() -> bool:
        info = await bus.js.consumer_info(bus.subjects.stream, durable)
        return bool(info.num_redelivered) and info.num_ack_pending >= 1

    await wait_until(redelivered, timeout=timeout)


async def revoke_session(
    bus: EventBus, session_id: UUID, *, expires_in: timedelta = timedelta(minutes=15)
) -> None:
    """Publish ``session:revoked`` for a session, as auth does on sign-out."""
    expires_at = datetime.now(UTC) + expires_in
    await bus.publish(
        Envelope.of(SessionRevoked(id=session_id, user_id=uuid4(), expires_at=expires_at))
    )
