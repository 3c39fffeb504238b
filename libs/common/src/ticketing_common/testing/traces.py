"""Spans written the way services write them with ``TRACES_FILE``, for tests of reading them."""

from __future__ import annotations

from pathlib import Path

from opentelemetry.trace import SpanKind, Tracer

from ticketing_common import tracing
from ticketing_common.settings import ServiceSettings


def write_sample_traces(directory: Path) -> None:
    """Two traces in ``<directory>/<service>.jsonl`` files: a reservation (orders' POST,
    its publish, tickets' consumer: 3 spans of 2 services) and a lone ``GET`` (1 span)."""

    def tracer_of(service: str) -> Tracer:
        settings = ServiceSettings(
            ENVIRONMENT="test",
            SERVICE_NAME=service,
            TRACES_FILE=str(directory / f"{service}.jsonl"),
        )
        return tracing.provider_of(settings).get_tracer("test")

    orders, tickets = tracer_of("orders"), tracer_of("tickets")
    with (
        orders.start_as_current_span("POST /api/orders", kind=SpanKind.SERVER),
        tracing.producing(orders, "order:created", subject="s", message_id="m") as headers,
    ):
        pass
    with tracing.consuming(tickets, "process order:created", headers):
        pass
    with orders.start_as_current_span("GET /api/orders", kind=SpanKind.SERVER):
        pass
