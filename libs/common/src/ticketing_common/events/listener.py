"""Listeners: one durable JetStream consumer per service and event type.

Every replica of a service binds to the same durable pull consumer (named
``<service>-<event>``), so JetStream hands each event to exactly one replica:
that is the queue group. A message is acked only after its handler returned,
which for a database service means after its transaction committed. A failing
handler is redelivered with exponential back-off; at the last allowed delivery
the message is copied to the dead-letter subject and acked, so one poison
message never blocks the rest.

Each pull fetches up to ``RetryPolicy.batch_size`` messages. The handlers of a
``transactional`` listener apply a whole batch in one transaction, in stream
order, and the batch is acked after that one commit; other handlers run and are
acked one message at a time. A transactional listener may also apply what it can
of a batch in one statement first (``together``: a replica's rows, all at once);
its handler applies the rest, one event at a time, as without it. A ``Pipelined``
handler sends a batch's work at once (one round trip to Redis) and has it acked
together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import asyncpg
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing_common.backoff import backoff, pause
from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import Envelope, EventType, P, decode
from ticketing_common.faults import crash_point
from ticketing_common.metrics import ConsumerMetrics, Metrics
from ticketing_common.settings import BusSettings
from ticketing_common.tracing import consuming

logger = logging.getLogger("ticketing.listener")

S = TypeVar("S")

# On the span of a message a batch step applied: how many it applied at once.
BATCH_ATTRIBUTE = "messaging.batch.message_count"

# How long one fetch waits for an event before asking again (a stop does not wait it out).
FETCH_WAIT_SECONDS = 1.0

Handler = Callable[[Envelope[P]], Awaitable[None]]
SessionHandler = Callable[[Envelope[P], AsyncSession], Awaitable[None]]
BatchStep = Callable[[Sequence[Envelope[P]], AsyncSession], Awaitable[Collection[int]]]
"""Applies what it can of a fetched batch at once, in the batch's transaction, and
answers the positions it applied; the session handler applies the others, in order.
It claims an event only when no earlier event of the batch is about the same record,
so each record's events still apply in the order they were published."""


class RetryLater(Exception):
    """Not now: nack so the message returns later (e.g. a version gap in a replica).

    ``delay`` is the first wait, doubled on each delivery up to ``max_delay`` (the
    policy's when None). A wait whose end should be noticed at once (a lock that
    another event will hand over) keeps both small.
    """

    def __init__(
        self, reason: str, *, delay: float | None = None, max_delay: float | None = None
    ) -> None:
        super().__init__(reason)
        self.delay = delay
        self.max_delay = max_delay


def database_unavailable(error: BaseException) -> bool:
    """Whether an error says the database cannot be reached, rather than a bug."""
    if isinstance(error, DBAPIError):
        return error.connection_invalidated  # the connection died under the statement
    # Raised as is while connecting: refused, timed out, the server starting or stopping.
    # (An OSError from elsewhere in a handler is a network outage too: waiting is right.)
    return isinstance(
        error,
        OSError | asyncpg.PostgresConnectionError | asyncpg.exceptions.OperatorInterventionError,
    )


def transactional(
    database: Database, handler: SessionHandler[P], *, together: BatchStep[P] | None = None
) -> Transactional[P]:
    """Run a handler in a transaction; it returns (and so is acked) after commit.

    ``together``: a batch step that applies, in one go, the events of a fetched batch
    it can (``replica.applied_together``); the handler applies the rest. It must
    write exactly what the handler would for the events it claims, in the same
    transaction, so a batch applied with it or one at a time ends the same.

    A database that cannot be reached is an outage, not a poison message: the event
    waits for it (``RetryLater``, the longer limit) instead of being dead-lettered
    after a few failures, which would also befall an event that had already waited
    for another (every delivery counts against the failure limit).
    """
    return Transactional(database, handler, together)


@dataclass(frozen=True)
class Transactional(Generic[P]):
    """A session handler and its database: called with one event, it runs in its own
    transaction; the listener instead applies a fetched batch in one transaction."""

    database: Database
    handler: SessionHandler[P]
    together: BatchStep[P] | None = None

    async def __call__(self, envelope: Envelope[P]) -> None:
        try:
            async with self.database.transaction() as session:
                await self.handler(envelope, session)
        except Exception as error:
            if database_unavailable(error):
                raise RetryLater(f"database unavailable: {error!r}") from error
            raise


@dataclass(frozen=True)
class Pipelined(Generic[P, S]):
    """A handler whose work for a fetched batch goes out at once (one Redis pipeline, say):
    ``stage`` makes each event's part, under that event's span, and ``send`` sends the
    parts together, returning when all are done. Called with one event, it sends one.

    ``send`` must be idempotent, as any handler: when it fails, every event of the
    batch is handled again, one at a time."""

    stage: Callable[[Envelope[P]], S]
    send: Callable[[Sequence[S]], Awaitable[None]]

    async def __call__(self, envelope: Envelope[P]) -> None:
        await self.send([self.stage(envelope)])


@dataclass(frozen=True)
class RetryPolicy:
    max_deliveries: int = 8
    # A version gap is not a failure: the missing event is usually a moment away, so
    # waiting for it gets many more (backed-off) deliveries before it is dead-lettered.
    max_waits: int = 40
    base_delay: float = 0.5
    max_delay: float = 30.0
    ack_wait: float = 30.0
    # Messages per fetch; a transactional listener applies them in one transaction.
    batch_size: int = 64
    # Seconds between a fetch that did not fill a batch and the next (EVENT_BATCH_LINGER_MS).
    linger: float = 0.0

    @classmethod
    def from_settings(cls, settings: BusSettings) -> RetryPolicy:
        return cls(
            max_deliveries=settings.EVENT_MAX_DELIVERIES,
            ack_wait=settings.EVENT_ACK_WAIT_SECONDS,
            batch_size=settings.EVENT_BATCH_SIZE,
            linger=settings.EVENT_BATCH_LINGER_MS / 1000,
        )

    def delay(self, delivery: int) -> float:
        return backoff(delivery, self.base_delay, self.max_delay)


@dataclass
class Delivery(Generic[P]):
    """A fetched message, decoded, that its handler is to see."""

    message: Msg
    envelope: Envelope[P]
    delivery: int
    started: bool = False  # its handler has been called
    settled: bool = False  # acked, nacked or dead-lettered


class _HandlerFailed(Exception):
    """A handler of a batch applied without savepoints failed: its transaction is lost."""


@dataclass
class Listener(Generic[P]):
    payload_type: type[P]
    handler: Handler[P]

    @property
    def event_type(self) -> EventType:
        return self.payload_type.event_type


@dataclass
class ListenerGroup:
    """The listeners of one service; ``run`` consumes until ``stopping`` is set."""

    bus: EventBus
    service: str
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    listeners: list[Listener[Any]] = field(default_factory=list)
    handled: int = 0
    dead_lettered: int = 0
    metrics: Metrics | None = None
    counters: ConsumerMetrics = field(init=False)

    def __post_init__(self) -> None:
        self.counters = ConsumerMetrics(self.metrics or Metrics())
        for listener in self.listeners:
            self.counters.declare(self.durable_name(listener.event_type))
        if self.metrics is not None:
            self.metrics.on_scrape(self.refresh_pending)

    async def refresh_pending(self) -> None:
        """Each consumer's pending counts, as JetStream keeps them."""
        for listener in self.listeners:
            durable = self.durable_name(listener.event_type)
            try:
                info = await self.bus.js.consumer_info(self.bus.subjects.stream, durable)
            except NotFoundError:
                continue  # not made yet: its consumer starts with the first run
            self.counters.pending.labels(consumer=durable).set(info.num_pending or 0)
            self.counters.ack_pending.labels(consumer=durable).set(info.num_ack_pending or 0)

    def add(self, payload_type: type[P], handler: Handler[P]) -> None:
        self.listeners.append(Listener(payload_type, handler))
        self.counters.declare(self.durable_name(payload_type.event_type))

    def durable_name(self, event_type: EventType) -> str:
        return f"{self.service}-{event_type.slug}"

    def consumer_config(self, event_type: EventType) -> ConsumerConfig:
        return ConsumerConfig(
            durable_name=self.durable_name(event_type),
            filter_subject=self.bus.subjects.of(event_type),
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.policy.ack_wait,
            # The bound is ours (dead-letter at max_deliveries); the server only backstops
            # a handler that crashes its process every time, which we dead-letter on sight.
            max_deliver=-1,
            max_ack_pending=1000,
        )

    async def run(self, stopping: asyncio.Event) -> None:
        tasks = [
            asyncio.create_task(self._consume(listener, stopping), name=listener.event_type)
            for listener in self.listeners
        ]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _consume(self, listener: Listener[P], stopping: asyncio.Event) -> None:
        event_type = listener.event_type
        subscription = await self.bus.js.pull_subscribe(
            self.bus.subjects.of(event_type),
            durable=self.durable_name(event_type),
            stream=self.bus.subjects.stream,
            config=self.consumer_config(event_type),
        )
        try:
            while not stopping.is_set():
                try:
                    messages = await fetch_unless_stopping(
                        subscription.fetch(self.policy.batch_size, timeout=FETCH_WAIT_SECONDS),
                        stopping,
                    )
                except (TimeoutError, NatsTimeoutError):
                    continue
                except Exception:
                    logger.exception("fetch failed", extra={"event_type": event_type.value})
                    await pause(stopping, 1)
                    continue
                # In-flight work is finished even when stopping: the messages are ours.
                await self._deliver(listener, messages)
                if 0 < len(messages) < self.policy.batch_size and self.policy.linger:
                    # Busy but not backlogged: let the next moment's events gather on
                    # the server, to be fetched, applied and acked together. A backlog
                    # (a full batch) is fetched again at once, and an idle consumer's
                    # fetch still answers the moment an event arrives.
                    await pause(stopping, self.policy.linger)
        finally:
            # Without our inbox's interest the broker hands the stopped fetch's pull
            # request nothing more: what it would have sent goes to another replica.
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()

    async def _deliver(self, listener: Listener[P], messages: list[Msg]) -> None:
        ready: list[Delivery[P]] = []
        for message in messages:
            delivery = await self._admit(listener, message)
            if delivery is not None:
                ready.append(delivery)
        if not ready:
            return
        holding = asyncio.create_task(self._hold(ready)) if len(ready) > 1 else None
        try:
            handler = listener.handler
            if isinstance(handler, Transactional) and len(ready) > 1:
                outcomes = await self._apply_together(listener, handler, ready)
                await self._settle(listener, ready, outcomes)
                return
            if isinstance(handler, Pipelined) and len(ready) > 1:
                outcomes = await self._send_together(listener, handler, ready)
                await self._settle(listener, ready, outcomes)
                return
            # One at a time, each acked as soon as it is done: such a handler may be
            # slow (a mail, a call).
            for delivery in ready:
                await self._settle(listener, [delivery], [await self._run(listener, delivery)])
        finally:
            if holding is not None:
                holding.cancel()

    async def _hold(self, batch: list[Delivery[P]]) -> None:
        """Tell the broker, every third of the ack wait, that the fetch's messages
        still waiting for their handler are being worked on: the ack wait runs for
        all of them from the fetch, and one must not be redelivered (to another
        replica) while it waits its turn here.

        A message whose handler has started keeps its ack wait, so a hung handler's
        message is redelivered as without batches; and the whole hold ends after one
        ack wait per message of the fetch, so the ones behind a hung handler are
        redelivered too. Settled ones are left alone: progress on a nacked message
        would postpone its retry."""
        loop = asyncio.get_running_loop()
        until = loop.time() + (len(batch) - 1) * self.policy.ack_wait
        while loop.time() < until:
            await asyncio.sleep(self.policy.ack_wait / 3)
            for delivery in batch:
                if not (delivery.started or delivery.settled):
                    with contextlib.suppress(Exception):  # at worst, a redelivery
                        await delivery.message.in_progress()

    async def _admit(self, listener: Listener[P], message: Msg) -> Delivery[P] | None:
        """The message decoded, or None when it went to the dead letters unseen."""
        delivery = message.metadata.num_delivered or 1
        if delivery > 1:
            self.counters.redeliveries.labels(consumer=self.durable_name(listener.event_type)).inc()
        try:
            envelope = decode(message.data, listener.payload_type)
        except ValidationError as error:
            # Redelivery cannot fix a malformed message: straight to the dead letters.
            await self._dead_letter(listener, message, f"invalid event: {error}", delivery)
            return None
        if delivery > max(self.policy.max_deliveries, self.policy.max_waits):
            # Seen more often than allowed without an answer: its handler kills the process.
            await self._dead_letter(listener, message, "delivery limit exceeded", delivery)
            return None
        return Delivery(message, envelope, delivery)

    def _span(
        self, delivery: Delivery[P], *, batch: int | None = None
    ) -> contextlib.AbstractContextManager[None]:
        # The handler's span continues the trace the message's headers carry. ``batch``:
        # the message was applied by a batch step, which applied that many at once.
        return consuming(
            self.bus.tracer,
            f"process {delivery.envelope.type.value}",
            delivery.message.headers,
            attributes=None if batch is None else {BATCH_ATTRIBUTE: batch},
            waits=(RetryLater,),
        )

    async def _run(self, listener: Listener[P], delivery: Delivery[P]) -> Exception | None:
        """Run the handler on one message: None, or what it raised."""
        delivery.started = True
        try:
            with self._span(delivery):
                await listener.handler(delivery.envelope)
        except Exception as error:
            return error
        return None

    async def _apply_together(
        self, listener: Listener[P], handler: Transactional[P], batch: list[Delivery[P]]
    ) -> list[Exception | None]:
        """Apply a batch in one transaction: each message's outcome, all committed.

        Optimistically without savepoints (the common case: every handler succeeds).
        When one fails, that transaction is rolled back and the batch applied again
        with a savepoint per message, so the failure undoes only its own message's
        work: the others are applied once, the failed one is retried or dead-lettered.
        Handlers are idempotent (any redelivery re-runs them), so the rolled-back
        first run is harmless.
        """
        try:
            try:
                return await self._in_one_transaction(handler, batch, savepoints=False)
            except _HandlerFailed:
                return await self._in_one_transaction(handler, batch, savepoints=True)
        except Exception as error:
            if database_unavailable(error):
                # An outage is a wait for every message, never a failure (see transactional).
                wait = RetryLater(f"database unavailable: {error!r}")
                return [wait for _ in batch]
            # The transaction itself failed (its commit, a savepoint): nothing of it
            # holds, so each message gets its own, as without batching.
            logger.warning(
                "batch transaction failed; applying one at a time",
                exc_info=error,
                extra={"event_type": listener.event_type.value, "batch": len(batch)},
            )
            return [await self._run(listener, delivery) for delivery in batch]

    async def _send_together(
        self, listener: Listener[P], handler: Pipelined[P, Any], batch: list[Delivery[P]]
    ) -> list[Exception | None]:
        """Stage each message's part in its span, send them all at once: each message's
        outcome. A wait (``RetryLater``: the store is away) is every message's; any other
        failure sends each message by itself, as without batching."""
        outcomes: list[Exception | None] = [None for _ in batch]
        parts: list[Any] = []
        for index, delivery in enumerate(batch):
            delivery.started = True
            try:
                with self._span(delivery):
                    parts.append(handler.stage(delivery.envelope))
            except Exception as error:
                outcomes[index] = error
        try:
            await handler.send(parts)
        except RetryLater as wait:
            return [outcome or wait for outcome in outcomes]
        except Exception as error:
            logger.warning(
                "batch failed; handling one at a time",
                exc_info=error,
                extra={"event_type": listener.event_type.value, "batch": len(batch)},
            )
            return [
                outcome or await self._run(listener, delivery)
                for delivery, outcome in zip(batch, outcomes, strict=True)
            ]
        return outcomes

    async def _in_one_transaction(
        self, handler: Transactional[P], batch: list[Delivery[P]], *, savepoints: bool
    ) -> list[Exception | None]:
        outcomes: list[Exception | None] = []
        async with handler.database.transaction() as session:
            # What the batch step takes first, at once (the first event of each record).
            together: Collection[int] = ()
            if handler.together is not None:
                together = await handler.together([d.envelope for d in batch], session)
            # The rest in stream order: one entity's events in the order they were published.
            for index, delivery in enumerate(batch):
                delivery.started = True
                if index in together:
                    # Applied above: its span still marks it consumed, in its own trace.
                    with self._span(delivery, batch=len(together)):
                        outcomes.append(None)
                    continue
                try:
                    with self._span(delivery):
                        if savepoints:
                            async with session.begin_nested():
                                await handler.handler(delivery.envelope, session)
                        else:
                            await handler.handler(delivery.envelope, session)
                except Exception as error:
                    if database_unavailable(error):
                        raise
                    if not savepoints:
                        raise _HandlerFailed from error
                    outcomes.append(error)
                else:
                    outcomes.append(None)
        return outcomes

    async def _settle(
        self, listener: Listener[P], batch: list[Delivery[P]], outcomes: list[Exception | None]
    ) -> None:
        """Ack what was applied (after its commit), retry or dead-letter the rest."""
        applied = [
            delivery for delivery, outcome in zip(batch, outcomes, strict=True) if outcome is None
        ]
        if applied:
            crash_point("listener.after_commit")  # crash tests: committed, never acked
            for delivery in applied:
                delivery.settled = True
            # One round trip for the lot: the broker applies a consumer's acks in the order
            # they arrive, so the last one's confirmation means every earlier one is applied.
            for delivery in applied[:-1]:
                await delivery.message.ack()
            await applied[-1].message.ack_sync()
        self.handled += len(applied)
        self.counters.handled.labels(consumer=self.durable_name(listener.event_type)).inc(
            len(applied)
        )
        for delivery, outcome in zip(batch, outcomes, strict=True):
            if outcome is not None:
                await self._fail(listener, delivery, outcome)

    async def _fail(self, listener: Listener[P], delivery: Delivery[P], error: Exception) -> None:
        delivery.settled = True
        log = {"event_type": delivery.envelope.type.value, "event_id": str(delivery.envelope.id)}
        if isinstance(error, RetryLater):
            wait = backoff(
                delivery.delivery,
                error.delay or self.policy.base_delay,
                min(self.policy.max_delay, error.max_delay or self.policy.max_delay),
            )
            await self._retry(
                listener,
                delivery.message,
                str(error),
                delivery.delivery,
                wait,
                log,
                limit=self.policy.max_waits,
            )
            return
        logger.error("handler failed", exc_info=error, extra={**log, "delivery": delivery.delivery})
        await self._retry(
            listener,
            delivery.message,
            repr(error),
            delivery.delivery,
            None,
            log,
            limit=self.policy.max_deliveries,
        )

    async def _retry(
        self,
        listener: Listener[P],
        message: Msg,
        reason: str,
        delivery: int,
        delay: float | None,
        log: dict[str, str],
        *,
        limit: int,
    ) -> None:
        if delivery >= limit:
            await self._dead_letter(listener, message, reason, delivery)
            return
        wait = delay if delay is not None else self.policy.delay(delivery)
        logger.info("will retry", extra={**log, "reason": reason, "delay": wait})
        await message.nak(delay=wait)

    async def _dead_letter(
        self, listener: Listener[P], message: Msg, reason: str, delivery: int
    ) -> None:
        sequence = message.metadata.sequence.stream if message.metadata.sequence else 0
        await self.bus.publish_raw(
            self.bus.subjects.dead_letter(self.service, listener.event_type),
            message.data,
            msg_id=f"{self.service}:{sequence}",
            headers={
                "Ticketing-Error": reason[:1000],
                "Ticketing-Deliveries": str(delivery),
                "Ticketing-Original-Subject": message.subject,
                "Ticketing-Stream-Sequence": str(sequence),
            },
        )
        await message.ack_sync()
        self.dead_lettered += 1
        self.counters.dead_letters.labels(consumer=self.durable_name(listener.event_type)).inc()
        logger.error(
            "dead-lettered",
            extra={"event_type": listener.event_type.value, "reason": reason, "delivery": delivery},
        )


async def fetch_unless_stopping(
    fetch: Coroutine[object, object, list[Msg]], stopping: asyncio.Event
) -> list[Msg]:
    """The fetch's messages, or none once ``stopping`` is set: a stop does not wait
    out the fetch's wait for events.

    nats-py's first pull request of a fetch is a no-wait one: the broker answers it
    with what it has (up to the batch) as soon as it has anything, so a cancel
    lands while it waits for the first message, not while it holds some.
    """
    task = asyncio.ensure_future(fetch)
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return [] if task.cancelled() else task.result()


async def replay_dead_letters(bus: EventBus, service: str, event_type: EventType) -> int:
    """Publish a service's dead letters of one type again, then remove them.

    Every consumer of that subject sees the event again; consumers are idempotent,
    so only the one that failed changes anything. A fresh message id avoids the
    de-duplication window; the envelope (and its event id) is unchanged.
    """
    subject = bus.subjects.dead_letter(service, event_type)
    stream = bus.subjects.dead_letter_stream
    replayed = 0
    subscription = await bus.js.pull_subscribe(subject, stream=stream)
    try:
        while True:
            try:
                messages = await subscription.fetch(64, timeout=1)
            except (TimeoutError, NatsTimeoutError):
                break
            for message in messages:
                original = (
                    message.headers.get("Ticketing-Original-Subject") if message.headers else None
                )
                sequence = message.metadata.sequence.stream if message.metadata.sequence else 0
                await bus.publish_raw(
                    original or bus.subjects.of(event_type),
                    message.data,
                    msg_id=f"replay:{service}:{sequence}",
                )
                await message.ack_sync()
                await bus.js.delete_msg(stream, sequence)
                replayed += 1
    finally:
        await subscription.unsubscribe()
    return replayed
