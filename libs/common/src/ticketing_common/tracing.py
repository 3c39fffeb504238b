"""Tracing with OpenTelemetry: one purchase is one trace, across every service it reaches.

The app builder calls :func:`install` once per app. From the settings:

- ``OTEL_EXPORTER_OTLP_ENDPOINT`` (a collector's base URL): spans go over OTLP/HTTP to
  ``{endpoint}/v1/traces``, in batches;
- ``TRACES_FILE``: spans are appended to that file as JSON lines, one span a line, as
  each ends (local use: ``ticketing up --traces``, read with ``ticketing traces``);
- neither: nothing is installed. The bus keeps a no-op tracer, the outbox stores no
  context, and the cost is a few function calls per event.

Each app has its own ``TracerProvider`` whose resource's ``service.name`` is its
``SERVICE_NAME`` (several apps share one process in the tests), and instruments its own
FastAPI app (server spans, health probes left out) and its own database engine (one
span per statement). Redis and httpx are instrumented process-wide (they patch client
classes); their spans go to the provider of the app whose span is their parent.

The context crosses process boundaries in events, as W3C ``traceparent`` and
``tracestate``: :func:`current_carrier` is what the outbox stores with the row (and
expiration with its delayed job); the relay publishes the row in a PRODUCER span whose
context travels in the NATS message headers; the listener handles the message in a
CONSUMER span whose parent is that context (:func:`consuming`).

A root span that is a client call (a statement, a Redis command, an HTTP request made
outside any request or event) is dropped: those are the relay's and the job runner's
polls, which would otherwise each make a trace of their own.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import Link, SpanKind, Status, StatusCode, Tracer
from opentelemetry.util.types import Attributes

from ticketing_common.settings import ServiceSettings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ticketing_common.db import Database
    from ticketing_common.events.bus import EventBus

INSTRUMENTATION_SCOPE = "ticketing"
# The health probes answer every few seconds and say nothing about a purchase.
UNTRACED_PATHS = "/healthz,/readyz"
MESSAGING_SYSTEM = "nats"
RETRY_LATER_ATTRIBUTE = "ticketing.retry_later"


def tracing_enabled(settings: ServiceSettings) -> bool:
    return bool(settings.OTEL_EXPORTER_OTLP_ENDPOINT or settings.TRACES_FILE)


class NoRootClientSpans(Sampler):
    """Samples every root span except a client call's (a background poll's)."""

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> SamplingResult:
        if kind is SpanKind.CLIENT:
            return SamplingResult(Decision.DROP)
        return ALWAYS_ON.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return "NoRootClientSpans"


def provider_of(settings: ServiceSettings) -> TracerProvider:
    """A tracer provider exporting where the settings say (tracing must be enabled)."""
    provider = TracerProvider(
        resource=Resource.create({SERVICE_NAME: settings.SERVICE_NAME}),
        sampler=ParentBased(root=NoRootClientSpans()),
    )
    if settings.OTEL_EXPORTER_OTLP_ENDPOINT:
        # Imported here: the exporter pulls in protobuf, which an untraced service never needs.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = f"{settings.OTEL_EXPORTER_OTLP_ENDPOINT.rstrip('/')}/v1/traces"
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    if settings.TRACES_FILE:
        # One span written as it ends: the file is current whenever someone reads it.
        provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(settings.TRACES_FILE)))
    return provider


class _ProcessWideProvider(trace.TracerProvider):
    """The provider for what is instrumented process-wide: the one of the app whose span
    is current (the parent of the client call), else the latest traced app's.

    Outside the tests a process runs one app, so this is simply its provider; in the
    tests, several apps share the process and each keeps its own client calls.
    """

    def __init__(self) -> None:
        self.by_service: dict[str, TracerProvider] = {}
        self.latest: trace.TracerProvider = trace.NoOpTracerProvider()
        self.installed = False
        self.lock = threading.Lock()

    def add(self, provider: TracerProvider) -> None:
        self.by_service[str(provider.resource.attributes.get(SERVICE_NAME))] = provider
        self.latest = provider

    def current(self) -> trace.TracerProvider:
        resource = getattr(trace.get_current_span(), "resource", None)
        service = resource.attributes.get(SERVICE_NAME) if isinstance(resource, Resource) else None
        return self.by_service.get(str(service), self.latest)

    def get_tracer(
        self,
        instrumenting_module_name: str,
        instrumenting_library_version: str | None = None,
        schema_url: str | None = None,
        attributes: Attributes = None,
    ) -> Tracer:
        return _ProcessWideTracer(self, instrumenting_module_name, instrumenting_library_version)


class _ProcessWideTracer(Tracer):
    def __init__(self, provider: _ProcessWideProvider, name: str, version: str | None) -> None:
        self._provider = provider
        self._name = name
        self._version = version

    def _tracer(self) -> Tracer:
        return self._provider.current().get_tracer(self._name, self._version)

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return self._tracer().start_span(*args, **kwargs)

    # Hands on the delegate's context manager (the API's type for it is private).
    def start_as_current_span(self, *args: Any, **kwargs: Any) -> Any:
        return self._tracer().start_as_current_span(*args, **kwargs)


_process_wide = _ProcessWideProvider()


def _instrument_process(provider: TracerProvider) -> None:
    """Redis (arq's jobs, rate limits) and httpx (the web pages' API calls) patch their
    client classes, so they are instrumented once per process."""
    with _process_wide.lock:
        _process_wide.add(provider)
        if _process_wide.installed:
            return
        _process_wide.installed = True
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    HTTPXClientInstrumentor().instrument(tracer_provider=_process_wide)
    RedisInstrumentor().instrument(tracer_provider=_process_wide)


def install(
    app: FastAPI, settings: ServiceSettings, *, database: Database | None, bus: EventBus | None
) -> TracerProvider | None:
    """Trace this app as its settings say; None (and nothing done) when tracing is off."""
    if not tracing_enabled(settings):
        return None
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    provider = provider_of(settings)
    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=provider,
        excluded_urls=UNTRACED_PATHS,
        # The ASGI send and receive of each request: noise in a purchase's tree.
        exclude_spans=["receive", "send"],
    )
    if database is not None:
        _instrument_engine(database, provider)
    if bus is not None:
        bus.tracer = provider.get_tracer(INSTRUMENTATION_SCOPE)
    _instrument_process(provider)
    return provider


def _instrument_engine(database: Database, provider: TracerProvider) -> None:
    """Spans for this app's engine only: the instrumentor's ``instrument()`` runs once
    per process and would also patch ``create_engine`` for everyone."""
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.metrics import NoOpMeter

    EngineTracer(  # type: ignore[no-untyped-call]
        trace.get_tracer("opentelemetry.instrumentation.sqlalchemy", tracer_provider=provider),
        database.engine.sync_engine,
        # Connection-pool usage is a metric, not a span: counted nowhere here.
        NoOpMeter("ticketing").create_up_down_counter("db.client.connections.usage"),
    )


# --- Context in events ------------------------------------------------------------


def current_carrier() -> dict[str, str] | None:
    """The current span's context as W3C headers (``traceparent``, ``tracestate``), to
    store with an event or a job; None when no span is current (tracing off)."""
    if not trace.get_current_span().get_span_context().is_valid:
        return None  # what the propagators would find, without asking each of them
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier or None


def _untraced(tracer: Tracer, carried: Mapping[str, str] | None) -> bool:
    """A span of ``tracer`` would be nothing: a no-op tracer (the service is not traced),
    no context handed over and no span current, so nothing to continue or pass on."""
    return (
        isinstance(tracer, trace.NoOpTracer)
        and not carried
        and not trace.get_current_span().get_span_context().is_valid
    )


def context_of(carrier: Mapping[str, str] | None) -> Context | None:
    """The context a stored or received carrier names; None for none."""
    if not carrier:
        return None
    return propagate.extract(dict(carrier))


@contextmanager
def producing(
    tracer: Tracer,
    event_type: str,
    *,
    subject: str,
    message_id: str,
    parent: Mapping[str, str] | None = None,
) -> Iterator[dict[str, str]]:
    """A PRODUCER span for publishing one event, child of ``parent`` (the context stored
    with it) or else of the current span; yields the message headers that carry it."""
    with tracer.start_as_current_span(
        f"publish {event_type}",
        context=context_of(parent),
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": MESSAGING_SYSTEM,
            "messaging.operation.type": "send",
            "messaging.destination.name": subject,
            "messaging.message.id": message_id,
        },
    ):
        yield current_carrier() or {}


@contextmanager
def consuming(
    tracer: Tracer,
    name: str,
    headers: Mapping[str, str] | None,
    *,
    attributes: Mapping[str, str | int] | None = None,
    waits: tuple[type[BaseException], ...] = (),
) -> Iterator[None]:
    """A CONSUMER span for handling one message (or running one job), child of the
    context its headers carry. An exception of ``waits`` (``RetryLater``) is noted on
    the span, which stays unmarked: waiting is not failing."""
    if _untraced(tracer, headers):
        yield
        return
    with tracer.start_as_current_span(
        name,
        context=context_of(headers),
        kind=SpanKind.CONSUMER,
        attributes={"messaging.system": MESSAGING_SYSTEM, **(attributes or {})},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield
        except waits as wait:
            span.set_attribute(RETRY_LATER_ATTRIBUTE, str(wait))
            raise
        except Exception as error:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, repr(error)))
            raise


# --- The JSON-lines file -------------------------------------------------------------


def span_record(span: ReadableSpan) -> dict[str, Any]:
    """One span as a line of the traces file."""
    context = span.get_span_context()
    parent = span.parent
    return {
        "trace": format(context.trace_id, "032x") if context else None,
        "span": format(context.span_id, "016x") if context else None,
        "parent": format(parent.span_id, "016x") if parent else None,
        "service": span.resource.attributes.get(SERVICE_NAME),
        "name": span.name,
        "kind": span.kind.name,
        "start": span.start_time,
        "end": span.end_time,
        "status": span.status.status_code.name,
        "attributes": {key: _plain(value) for key, value in (span.attributes or {}).items()},
    }


def _plain(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


class JsonLinesExporter(SpanExporter):
    """Appends spans to a file, one JSON object a line."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = "".join(json.dumps(span_record(span), default=str) + "\n" for span in spans)
        try:
            with self._lock, self.path.open("a", encoding="utf-8") as file:
                file.write(lines)
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        """Nothing is held open between exports."""


# --- Reading traces back --------------------------------------------------------------


@dataclass
class SpanNode:
    """A span read back from a traces file, with its children in start order."""

    trace: str
    span: str
    parent: str | None
    service: str
    name: str
    kind: str
    start: int
    end: int
    status: str
    attributes: dict[str, object]
    children: list[SpanNode] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        return (self.end - self.start) / 1e6

    def walk(self, depth: int = 0) -> Iterator[tuple[int, SpanNode]]:
        yield depth, self
        for child in self.children:
            yield from child.walk(depth + 1)


@dataclass
class Trace:
    """The spans of one trace; ``roots`` are those whose parent is not among them."""

    trace_id: str
    spans: list[SpanNode]
    roots: list[SpanNode]

    @property
    def start(self) -> int:
        return min(span.start for span in self.spans)

    @property
    def end(self) -> int:
        return max(span.end for span in self.spans)

    @property
    def services(self) -> list[str]:
        return sorted({span.service for span in self.spans})

    @property
    def connected(self) -> bool:
        """One tree: a single span without a parent among the trace's spans."""
        return len(self.roots) == 1


def read_spans(paths: Iterable[Path]) -> list[SpanNode]:
    """The spans of traces files (a line cut short by a writer still writing is skipped)."""
    spans = []
    for path in paths:
        with path.open(encoding="utf-8") as file:
            for line in file:
                try:
                    record = json.loads(line)
                    spans.append(
                        SpanNode(
                            trace=record["trace"],
                            span=record["span"],
                            parent=record.get("parent"),
                            service=str(record.get("service") or "?"),
                            name=record["name"],
                            kind=record.get("kind", ""),
                            start=int(record["start"]),
                            end=int(record["end"]),
                            status=record.get("status", ""),
                            attributes=record.get("attributes") or {},
                        )
                    )
                except (ValueError, KeyError, TypeError):
                    continue
    return spans


def traces_of(spans: Iterable[SpanNode]) -> list[Trace]:
    """Spans grouped into traces and trees, oldest trace first."""
    by_trace: dict[str, list[SpanNode]] = {}
    for span in spans:
        by_trace.setdefault(span.trace, []).append(span)
    traces = []
    for trace_id, members in by_trace.items():
        members.sort(key=lambda span: span.start)
        by_id = {span.span: span for span in members}
        roots = []
        for span in members:
            parent = by_id.get(span.parent) if span.parent else None
            if parent is None:
                roots.append(span)
            else:
                parent.children.append(span)
        traces.append(Trace(trace_id, members, roots))
    return sorted(traces, key=lambda found: found.start)


def render(found: Trace, *, name_width: int = 64) -> list[str]:
    """A trace as an indented tree: service, span name, duration."""
    started = datetime.fromtimestamp(found.start / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S")
    header = (
        f"trace {found.trace_id}  {started} UTC  {(found.end - found.start) / 1e6:.1f} ms  "
        f"{len(found.spans)} spans  {', '.join(found.services)}"
    )
    rows = [(depth, span) for root in found.roots for depth, span in root.walk()]
    service_width = max(len(span.service) for _, span in rows)
    lines = [header]
    for depth, span in rows:
        name = f"{'  ' * depth}{span.name}"
        if len(name) > name_width:
            name = name[: name_width - 1] + "…"
        note = "  ERROR" if span.status == "ERROR" else ""
        if RETRY_LATER_ATTRIBUTE in span.attributes:
            note = "  (retry later)"
        lines.append(
            f"  {span.service:<{service_width}}  {name:<{name_width}} {span.duration_ms:>9.1f} ms"
            f"{note}"
        )
    return lines
