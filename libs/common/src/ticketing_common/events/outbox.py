"""The transactional outbox: record an event with the state change, publish after commit.

:func:`record` inserts the envelope into the ``outbox`` table in the caller's
transaction and issues ``NOTIFY``, which PostgreSQL delivers only when that
transaction commits. :class:`OutboxRelay` listens for it, publishes a batch of
pending rows in order with ``Nats-Msg-Id`` = event id (all sent, then all acks
awaited), and deletes the published ones in one statement. A crash between commit
and publish leaves the row for the next relay run; a crash between publish and
delete makes a second publish that JetStream's de-duplication drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import asyncpg
from nats.js.api import PubAck
from sqlalchemy import (
    ARRAY,
    CTE,
    BigInteger,
    Column,
    DateTime,
    FromClause,
    Identity,
    Insert,
    String,
    Table,
    Text,
    Uuid,
    any_,
    bindparam,
    delete,
    func,
    insert,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing_common.backoff import pause
from ticketing_common.db import Database, new_metadata, plain_url
from ticketing_common.events.bus import EventBus, Outgoing
from ticketing_common.events.contracts import Envelope, P
from ticketing_common.metrics import Metrics, OutboxMetrics
from ticketing_common.tracing import current_carrier

logger = logging.getLogger("ticketing.outbox")

NOTIFY_CHANNEL = "ticketing_outbox"
BATCH_SIZE = 100
TRACE_CONTEXT_COLUMN = "trace_context"

outbox_metadata = new_metadata()

outbox_table = Table(
    "outbox",
    outbox_metadata,
    Column("seq", BigInteger, Identity(), primary_key=True),
    Column("event_id", Uuid, nullable=False, unique=True),
    Column("event_type", String(64), nullable=False),
    Column("subject_suffix", String(128), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # The W3C trace context (traceparent, tracestate) the event was recorded in, so its
    # publish continues that trace; NULL when the service is not traced.
    Column(TRACE_CONTEXT_COLUMN, JSONB(none_as_null=True), nullable=True),
)


_RECORDED_COLUMNS = ["event_id", "event_type", "subject_suffix", "body", TRACE_CONTEXT_COLUMN]
# An envelope's row, as parameters (``parameters_of`` gives their values).
_RECORDED_ROW = (
    bindparam("event_id", type_=Uuid),
    bindparam("event_type", type_=String),
    bindparam("subject_suffix", type_=String),
    bindparam("body", type_=Text),
    bindparam("trace_context", type_=outbox_table.c.trace_context.type),
)


def _recording(per_row_of: FromClause | None = None) -> Insert:
    """The insert of an envelope's row and its NOTIFY: one row and one NOTIFY for each
    row of ``per_row_of``, or exactly one without it. The NOTIFY is a CTE the insert
    selects from, so it runs exactly as often as a row is written: a statement that
    writes no row wakes no relay."""
    notify = select(func.pg_notify(NOTIFY_CHANNEL, ""))
    if per_row_of is not None:
        notify = notify.select_from(per_row_of)
    return insert(outbox_table).from_select(
        _RECORDED_COLUMNS, select(*_RECORDED_ROW).select_from(notify.cte("notified"))
    )


# The row and its NOTIFY in one statement (one round trip). A NOTIFY inside a savepoint
# that is rolled back is dropped with it, like the row.
RECORD = _recording()


def recorded_with(written: CTE) -> CTE:
    """The outbox row of one envelope (its parameters: ``parameters_of``) for each row
    the data-modifying CTE ``written`` returns, with its NOTIFY, as a CTE of the same
    statement: a state change and its event in one round trip. A statement ``WITH
    written AS (INSERT … RETURNING …), <this> SELECT … FROM written`` records the event
    exactly when ``written`` writes its row, and not at all when it writes none (an
    ``ON CONFLICT DO NOTHING`` that found a conflict, a ``WHERE`` that refused it);
    PostgreSQL runs every data-modifying CTE to completion, selected from or not.
    Build it once, at import, like the statement it is part of: the caller adds it
    with ``add_cte``."""
    return _recording(per_row_of=written).cte("recorded")


def parameters_of(envelope: Envelope[P]) -> dict[str, object]:
    """The values of ``RECORD``'s parameters (and of ``recorded_with``'s) for the
    envelope: its row, and the current trace context, for its publish to continue."""
    return {
        "event_id": envelope.id,
        "event_type": envelope.type.value,
        "subject_suffix": envelope.type.subject_suffix,
        "body": envelope.to_json().decode(),
        "trace_context": current_carrier(),
    }


async def record(session: AsyncSession, payload: P) -> Envelope[P]:
    """Add an event to the caller's transaction; it is published only if that commits."""
    envelope = Envelope.of(payload)
    await session.execute(RECORD, parameters_of(envelope))
    return envelope


# The oldest pending rows, in commit order. SKIP LOCKED: replicas share the work
# instead of queueing on one row.
PENDING_BATCH = (
    select(
        outbox_table.c.seq,
        outbox_table.c.event_id,
        outbox_table.c.subject_suffix,
        outbox_table.c.body,
        outbox_table.c.event_type,
        outbox_table.c.trace_context,
        # Its age on the database's clock: no skew with ours.
        func.extract("epoch", func.clock_timestamp() - outbox_table.c.created_at).label("age"),
    )
    .order_by(outbox_table.c.seq)
    .limit(BATCH_SIZE)
    .with_for_update(skip_locked=True)
)
# One statement, one array parameter, whatever the number of rows.
PUBLISHED_ROWS = delete(outbox_table).where(
    outbox_table.c.seq == any_(bindparam("seqs", type_=ARRAY(BigInteger)))
)


class OutboxRelay:
    """Publishes committed outbox rows. Safe to run in every replica of a service."""

    def __init__(
        self,
        database: Database,
        bus: EventBus,
        *,
        fallback_poll_seconds: float = 5.0,
        retry_seconds: float = 1.0,
        linger_seconds: float = 0.0,
        metrics: Metrics | None = None,
    ) -> None:
        self.database = database
        self.bus = bus
        self.fallback_poll_seconds = fallback_poll_seconds
        self.retry_seconds = retry_seconds
        # Woken by a commit right after it published (busy), the relay waits this long
        # before it reads, so the commits of that moment go out in one select, one
        # pipelined send and one delete.
        self.linger_seconds = linger_seconds
        self._wake = asyncio.Event()
        # LISTEN is up, and the last select found no row with no commit notified since.
        self._listening = False
        self._drained = False
        self._notified = 0  # notifications received: a commit happened since a read
        self.published = 0
        self.metrics = OutboxMetrics(metrics or Metrics())
        if metrics is not None:
            metrics.on_scrape(self.refresh_pending)

    async def refresh_pending(self) -> None:
        if self._drained:
            # Nothing committed since the relay last found the table empty (a commit
            # notifies, which clears this): no query for a scrape of an idle service.
            self.metrics.pending.set(0)
            return
        async with self.database.engine.connect() as connection:
            pending = await connection.scalar(select(func.count()).select_from(outbox_table))
        self.metrics.pending.set(pending or 0)

    async def publish_pending(self) -> int:
        """Publish every pending row; returns how many were published."""
        total = 0
        while True:
            notified = self._notified
            async with self.database.transaction() as session:
                rows = (await session.execute(PENDING_BATCH)).all()
                if not rows:
                    # Unless a commit notified since the select began: its row may be there.
                    self._drained = self._listening and notified == self._notified
                    return total
                selected = time.perf_counter()
                # Sent in seq order on one connection, acks awaited together (see
                # EventBus.publish_all): JetStream stores them in this order.
                results = await self.bus.publish_all(
                    [
                        Outgoing(
                            self.bus.subjects.of_suffix(row.subject_suffix),
                            row.body.encode(),
                            str(row.event_id),
                            row.event_type,
                            row.trace_context,
                        )
                        for row in rows
                    ]
                )
                published_at = time.perf_counter() - selected
                published = [
                    row
                    for row, result in zip(rows, results, strict=True)
                    if isinstance(result, PubAck)
                ]
                if published:
                    await session.execute(PUBLISHED_ROWS, {"seqs": [row.seq for row in published]})
            total += len(published)
            self.published += len(published)
            # After the delete committed: counted once.
            self.metrics.observe_published(float(row.age) + published_at for row in published)
            failures = [result for result in results if not isinstance(result, PubAck)]
            if failures:
                # The failed rows stay and are published again on the next run.
                raise failures[0]
            if len(rows) < BATCH_SIZE and self._listening and notified == self._notified:
                # A short batch had every row committed before the select, and no commit
                # has notified since it began: a later one notifies and wakes the relay,
                # so there is nothing to select again for.
                self._drained = True
                return total

    def _on_notify(self, *_: object) -> None:
        self._notified += 1
        self._drained = False
        self._wake.set()

    async def _listen(self) -> asyncpg.Connection | None:
        try:
            connection = await asyncpg.connect(plain_url(self.database.url))
            await connection.add_listener(NOTIFY_CHANNEL, self._on_notify)
            connection.add_termination_listener(self._on_lost)
            self._listening = True
            return connection
        except (OSError, asyncpg.PostgresError):
            logger.warning("outbox LISTEN unavailable; polling", exc_info=True)
            return None

    def _on_lost(self, *_: object) -> None:
        # Notifications may be missed from now on: a scrape counts again.
        self._listening = False
        self._notified += 1
        self._drained = False

    async def run(self, stopping: asyncio.Event) -> None:
        listener = await self._listen()
        try:
            while not stopping.is_set():
                self._wake.clear()
                published = 0
                try:
                    published = await self.publish_pending()
                    timeout = self.fallback_poll_seconds
                except Exception:
                    logger.exception("outbox relay failed; retrying")
                    timeout = self.retry_seconds
                if listener is None or listener.is_closed():
                    listener = await self._listen()
                waiters = [asyncio.ensure_future(self._wake.wait())]
                waiters.append(asyncio.ensure_future(stopping.wait()))
                _, pending = await asyncio.wait(
                    waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                for waiter in pending:
                    waiter.cancel()
                if (
                    published  # busy: an idle relay's first commit goes out at once
                    and self.linger_seconds
                    and self._wake.is_set()
                    and not stopping.is_set()
                ):
                    await pause(stopping, self.linger_seconds)
        finally:
            if listener is not None:
                with contextlib.suppress(Exception):
                    await listener.close()
