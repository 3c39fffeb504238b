"""Trace context through events: recorded with the outbox row, published in the NATS
headers by the relay (a PRODUCER span), restored by the listener as the parent of the
handler's CONSUMER span; and the traces file read back as one tree."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from pathlib import Path
from uuid import uuid4

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind, StatusCode, Tracer
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing_common import tracing
from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import Envelope, TicketCreated
from ticketing_common.events.listener import (
    BATCH_ATTRIBUTE,
    ListenerGroup,
    RetryLater,
    RetryPolicy,
    transactional,
)
from ticketing_common.events.outbox import OutboxRelay, outbox_table, record
from ticketing_common.settings import ServiceSettings
from ticketing_common.testing import wait_until
from ticketing_common.testing.traces import write_sample_traces

FAST = RetryPolicy(max_deliveries=3, base_delay=0.05, max_delay=0.2, ack_wait=5)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


def tracer_of(service: str, exporter: InMemorySpanExporter) -> Tracer:
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test")


def ticket() -> TicketCreated:
    return TicketCreated(
        id=uuid4(), version=0, title="Gig", price=Decimal("12.00"), user_id=uuid4()
    )


def traceparent(context: SpanContext) -> str:
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


@contextlib.asynccontextmanager
async def running(group: ListenerGroup) -> AsyncIterator[None]:
    stopping = asyncio.Event()
    task = asyncio.create_task(group.run(stopping))
    try:
        yield
    finally:
        stopping.set()
        await asyncio.wait_for(task, timeout=10)


def only(spans: tuple[ReadableSpan, ...], kind: SpanKind) -> ReadableSpan:
    found = [span for span in spans if span.kind is kind]
    assert len(found) == 1, [span.name for span in spans]
    return found[0]


async def stored_contexts(database: Database) -> list[object]:
    async with database.transaction() as session:
        return list((await session.execute(select(outbox_table.c.trace_context))).scalars())


async def test_an_event_continues_the_trace_it_was_recorded_in_across_the_bus(
    database: Database, bus: EventBus, exporter: InMemorySpanExporter
) -> None:
    bus.tracer = tracer_of("tickets", exporter)
    with bus.tracer.start_as_current_span("POST /api/tickets", kind=SpanKind.SERVER) as request:
        async with database.transaction() as session:
            await record(session, ticket())
    request_context = request.get_span_context()

    # Recorded with the row, in the transaction that recorded the event.
    assert await stored_contexts(database) == [{"traceparent": traceparent(request_context)}]

    # The relay publishes it in a PRODUCER span, child of the request, carried in the headers.
    assert await OutboxRelay(database, bus).publish_pending() == 1
    producer = only(exporter.get_finished_spans(), SpanKind.PRODUCER)
    assert producer.name == "publish ticket:created"
    assert producer.parent is not None
    assert producer.parent.span_id == request_context.span_id
    assert producer.context is not None
    message = await bus.js.get_last_msg(bus.subjects.stream, bus.subjects.of(ticket().event_type))
    assert message.headers is not None
    assert message.headers["traceparent"] == traceparent(producer.context)

    # Another service's listener handles it in a CONSUMER span, child of the publish.
    consumer_bus = EventBus(bus.url, bus.subjects.namespace, client_name="orders")
    await consumer_bus.connect()
    consumer_bus.tracer = tracer_of("orders", exporter)
    seen: list[SpanContext] = []

    async def handle(_: Envelope[TicketCreated]) -> None:
        seen.append(trace.get_current_span().get_span_context())

    group = ListenerGroup(consumer_bus, "orders", FAST)
    group.add(TicketCreated, handle)
    try:
        async with running(group):
            await wait_until(lambda: group.handled)
    finally:
        await consumer_bus.close()
    consumer = only(exporter.get_finished_spans(), SpanKind.CONSUMER)
    assert consumer.name == "process ticket:created"
    assert consumer.resource.attributes[SERVICE_NAME] == "orders"
    assert consumer.parent is not None
    assert consumer.parent.span_id == producer.context.span_id
    assert consumer.parent.is_remote
    assert consumer.context is not None
    # The handler ran inside that span: what it records continues the same trace.
    assert seen == [consumer.context]
    assert consumer.context.trace_id == request_context.trace_id


async def test_without_tracing_nothing_is_stored_or_sent(database: Database, bus: EventBus) -> None:
    async with database.transaction() as session:
        await record(session, ticket())
    async with database.transaction() as session:
        # SQL NULL, not a JSON null: nothing was recorded.
        nulls = await session.scalar(
            text("SELECT count(*) FROM outbox WHERE trace_context IS NULL")
        )
    assert nulls == 1
    assert await OutboxRelay(database, bus).publish_pending() == 1
    message = await bus.js.get_last_msg(bus.subjects.stream, bus.subjects.of(ticket().event_type))
    assert message.headers is not None
    assert "traceparent" not in message.headers


def test_tracing_is_off_unless_an_exporter_is_configured(tmp_path: Path) -> None:
    assert not tracing.tracing_enabled(ServiceSettings(ENVIRONMENT="test"))
    assert tracing.tracing_enabled(
        ServiceSettings(ENVIRONMENT="test", TRACES_FILE=str(tmp_path / "t.jsonl"))
    )
    assert tracing.tracing_enabled(
        ServiceSettings(ENVIRONMENT="test", OTEL_EXPORTER_OTLP_ENDPOINT="http://c:4318")
    )


def test_a_client_call_outside_any_trace_is_not_recorded(tmp_path: Path) -> None:
    # The relay's and the job runner's polls: no trace of their own.
    provider = tracing.provider_of(
        ServiceSettings(
            ENVIRONMENT="test", SERVICE_NAME="orders", TRACES_FILE=str(tmp_path / "t.jsonl")
        )
    )
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("SELECT", kind=SpanKind.CLIENT) as poll:
        assert not poll.is_recording()
    with (
        tracer.start_as_current_span("process order:created", kind=SpanKind.CONSUMER),
        tracer.start_as_current_span("INSERT", kind=SpanKind.CLIENT) as statement,
    ):
        assert statement.is_recording()


def test_the_traces_files_read_back_as_one_tree_per_trace(tmp_path: Path) -> None:
    write_sample_traces(tmp_path)

    found = tracing.traces_of(tracing.read_spans(sorted(tmp_path.glob("*.jsonl"))))

    assert [len(one.spans) for one in found] == [3, 1]
    purchase = found[0]
    assert purchase.connected
    assert purchase.services == ["orders", "tickets"]
    lines = tracing.render(purchase, name_width=30)
    assert lines[0].startswith(f"trace {purchase.trace_id}")
    assert [line.split()[:3] for line in lines[1:]] == [
        ["orders", "POST", "/api/orders"],
        ["orders", "publish", "order:created"],
        ["tickets", "process", "order:created"],
    ]
    # Indented by depth: the consumer under the publish under the request.
    names = [line[len("  tickets  ") :] for line in lines[1:]]
    assert [len(name) - len(name.lstrip()) for name in names] == [0, 2, 4]


def test_a_handler_that_waits_is_not_marked_failed(exporter: InMemorySpanExporter) -> None:
    tracer = tracer_of("tickets", exporter)
    with (
        pytest.raises(RetryLater),
        tracing.consuming(tracer, "process order:cancelled", None, waits=(RetryLater,)),
    ):
        raise RetryLater("version gap")
    with (
        pytest.raises(RuntimeError),
        tracing.consuming(tracer, "process order:created", None, waits=(RetryLater,)),
    ):
        raise RuntimeError("bug")

    waited, failed = exporter.get_finished_spans()
    assert waited.status.status_code is StatusCode.UNSET
    assert waited.attributes == {
        "messaging.system": "nats",
        tracing.RETRY_LATER_ATTRIBUTE: "version gap",
    }
    assert failed.status.status_code is StatusCode.ERROR
    assert [event.name for event in failed.events] == ["exception"]


async def test_events_a_batch_step_applied_each_keep_a_consumer_span_in_their_own_trace(
    database: Database, bus: EventBus, exporter: InMemorySpanExporter
) -> None:
    """A replica's batch step applies many events in one statement; each event's
    CONSUMER span is still there, child of its own publish, and says it was applied
    with its batch."""
    bus.tracer = tracer_of("tickets", exporter)
    for _ in range(3):
        with bus.tracer.start_as_current_span("POST /api/tickets", kind=SpanKind.SERVER):
            await bus.publish(Envelope.of(ticket()))
    producers = {
        span.context.span_id
        for span in exporter.get_finished_spans()
        if span.kind is SpanKind.PRODUCER and span.context is not None
    }
    assert len(producers) == 3

    consumer_bus = EventBus(bus.url, bus.subjects.namespace, client_name="orders")
    await consumer_bus.connect()
    consumer_bus.tracer = tracer_of("orders", exporter)

    async def every_one(
        events: Sequence[Envelope[TicketCreated]], session: AsyncSession
    ) -> set[int]:
        await session.execute(text("SELECT 1"))  # a batch step's one statement
        return set(range(len(events)))

    async def one_at_a_time(event: Envelope[TicketCreated], session: AsyncSession) -> None:
        raise AssertionError("the batch step applied every event")

    group = ListenerGroup(consumer_bus, "orders", FAST)
    group.add(TicketCreated, transactional(database, one_at_a_time, together=every_one))
    try:
        async with running(group):
            await wait_until(lambda: group.handled == 3)
    finally:
        await consumer_bus.close()
    consumers = [s for s in exporter.get_finished_spans() if s.kind is SpanKind.CONSUMER]
    assert sorted(s.name for s in consumers) == ["process ticket:created"] * 3
    assert {s.parent.span_id for s in consumers if s.parent is not None} == producers
    assert {(s.attributes or {}).get(BATCH_ATTRIBUTE) for s in consumers} == {3}
