"""Metrics in Prometheus' text format: one registry per app, served at ``/metrics``.

Each app has its own ``Metrics`` (a ``CollectorRegistry`` of its own, not the
process-wide default: tests serve several apps in one process, and two apps must
not share or double-register a series). The app builder makes it, puts it in the
app's components and hands it to the outbox relay, the listeners and the
service's parts, which register their own series on it.

Figures that live elsewhere (rows left in the outbox, a consumer's pending count
in JetStream, rows by status) are gauges read when scraped: each owner registers
a refresh with ``on_scrape``; a refresh that fails leaves its gauge as it was.

Every series is listed in ``docs/operations.md#metrics``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager

from fastapi.exceptions import RequestValidationError
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException
from starlette.types import Scope

from ticketing_common.errors import AppError

logger = logging.getLogger("ticketing.metrics")

# No ``*_created`` series: in the text format Prometheus stores each as one more gauge
# per counter and histogram, which no panel uses. (Process-wide, as the library has it.)
disable_created_metrics()  # type: ignore[no-untyped-call]

Refresh = Callable[[], Awaitable[None]]

METRICS_PATH = "/metrics"
CONTENT_TYPE = CONTENT_TYPE_LATEST
# One scrape waits this long for the gauges it reads elsewhere, then answers with
# the last values: a slow database must not make the scrape itself time out.
REFRESH_TIMEOUT_SECONDS = 2.0
UNMATCHED_ROUTE = "unmatched"

# Seconds. HTTP: a fast read is a few ms, a payment a few hundred ms with Stripe.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Outbox commit -> publish: about 1 ms when LISTEN/NOTIFY wakes the relay, up to the
# 5 s fallback poll when it does not (docs/benchmarks.md).
OUTBOX_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0)
# Expiration job start - expiresAt: about half the poll delay (0.1 s) at the median.
LATENESS_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 30.0, 60.0)


class Metrics:
    """One app's metrics: its registry, the HTTP series, and the gauges read on scrape."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._refreshes: list[Refresh] = []
        self.http_requests = Counter(
            "ticketing_http_requests",
            "HTTP requests answered, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_duration = Histogram(
            "ticketing_http_request_duration_seconds",
            "Time from a request's arrival to the end of its response, by method and route.",
            ["method", "route"],
            buckets=HTTP_BUCKETS,
            registry=self.registry,
        )

    def on_scrape(self, refresh: Refresh) -> None:
        """Run ``refresh`` (which sets gauges) before each scrape is answered."""
        self._refreshes.append(refresh)

    async def refresh(self) -> None:
        async def run(refresh: Refresh) -> None:
            try:
                await asyncio.wait_for(refresh(), timeout=REFRESH_TIMEOUT_SECONDS)
            except Exception:
                logger.warning("metrics refresh failed", extra={"refresh": repr(refresh)})

        await asyncio.gather(*(run(refresh) for refresh in self._refreshes))

    async def exposition(self) -> bytes:
        """The registry in Prometheus' text format, gauges refreshed first."""
        await self.refresh()
        return generate_latest(self.registry)


class OutboxMetrics:
    """The outbox relay's series."""

    def __init__(self, metrics: Metrics) -> None:
        self.pending = Gauge(
            "ticketing_outbox_pending",
            "Outbox rows committed and not yet published (read when scraped).",
            registry=metrics.registry,
        )
        self.published = Counter(
            "ticketing_outbox_published",
            "Outbox rows published to JetStream by this replica.",
            registry=metrics.registry,
        )
        self.lag = Histogram(
            "ticketing_outbox_publish_lag_seconds",
            "Time from an outbox row's created_at (its transaction's start) to its publish.",
            buckets=OUTBOX_LAG_BUCKETS,
            registry=metrics.registry,
        )

    def observe_published(self, lags: Iterable[float]) -> None:
        for lag in lags:
            self.lag.observe(max(lag, 0.0))
            self.published.inc()


class ConsumerMetrics:
    """The listeners' series, one label value per durable consumer."""

    def __init__(self, metrics: Metrics) -> None:
        registry = metrics.registry
        self.handled = Counter(
            "ticketing_events_handled",
            "Events a consumer's handler applied (and acked).",
            ["consumer"],
            registry=registry,
        )
        self.redeliveries = Counter(
            "ticketing_event_redeliveries",
            "Deliveries of an event after its first (retries after a failure or a wait).",
            ["consumer"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "ticketing_dead_letters",
            "Events a consumer gave up on and copied to the dead-letter stream.",
            ["consumer"],
            registry=registry,
        )
        self.pending = Gauge(
            "ticketing_consumer_pending",
            "Events in the stream not yet delivered to the consumer (JetStream, read when "
            "scraped; every replica reports the same consumer).",
            ["consumer"],
            registry=registry,
        )
        self.ack_pending = Gauge(
            "ticketing_consumer_ack_pending",
            "Events delivered to the consumer and not acked yet (JetStream, read when scraped).",
            ["consumer"],
            registry=registry,
        )

    def declare(self, consumer: str) -> None:
        """Show the consumer's series at 0 before anything happened to it."""
        for family in (self.handled, self.redeliveries, self.dead_letters):
            family.labels(consumer=consumer)
        for gauge in (self.pending, self.ack_pending):
            gauge.labels(consumer=consumer)


REJECTED = "rejected"
FAILED = "failed"


class Outcomes:
    """How an operation ends, counted by outcome: ``success`` when it returned, else the
    first of ``errors`` the exception is an instance of, ``rejected`` for any other
    expected refusal (an ``AppError``, an HTTP error under 500, invalid input) and
    ``failed`` for anything else. Every outcome's series starts at 0."""

    def __init__(
        self,
        metrics: Metrics,
        name: str,
        documentation: str,
        *,
        success: str,
        errors: Sequence[tuple[type[BaseException], str]] = (),
    ) -> None:
        self.success = success
        self.errors = list(errors)
        self.counter = Counter(name, documentation, ["outcome"], registry=metrics.registry)
        for outcome in {success, *(outcome for _, outcome in errors), REJECTED, FAILED}:
            self.counter.labels(outcome=outcome)

    def count(self, outcome: str) -> None:
        self.counter.labels(outcome=outcome).inc()

    def outcome_of(self, error: BaseException) -> str:
        for kind, outcome in self.errors:
            if isinstance(error, kind):
                return outcome
        if isinstance(error, AppError | RequestValidationError):
            return REJECTED
        if isinstance(error, HTTPException) and error.status_code < 500:
            return REJECTED
        return FAILED

    @asynccontextmanager
    async def counting(self) -> AsyncIterator[None]:
        """Count how the block ends (the error goes on)."""
        try:
            yield
        except BaseException as error:
            if not isinstance(error, asyncio.CancelledError):
                self.count(self.outcome_of(error))
            raise
        self.count(self.success)


def route_template(scope: Scope) -> str:
    """The matched route's path template (``/api/orders/{order_id}``), never the raw
    path: ids in a label would make one series per order.

    Rebuilt from the path and the path parameters the router matched (each value's
    last occurrence, on segment boundaries, becomes ``{name}``): an included router's
    route knows only its path relative to the prefix, and a mount's child none.
    """
    if "route" not in scope:
        return UNMATCHED_ROUTE
    template = str(scope.get("path", ""))
    params = scope.get("path_params") or {}
    for name, raw in params.items():
        value = f"/{raw}"
        at = template.rfind(value)
        end = at + len(value)
        if at >= 0 and (end == len(template) or template[end] == "/"):
            template = f"{template[:at]}/{{{name}}}{template[end:]}"
    return template


class HttpMetrics:
    """Counts each request and times it, labelled by method, route template and status;
    called by the app's request middleware (``ticketing_common.app.RequestContext``)
    once the app ran, when the router has recorded the route it matched in the scope.

    The labelled series are looked up once per (method, route, status), not per
    request: ``labels()`` checks and joins its arguments under a lock each time.
    """

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, scope: Scope, status: int, seconds: float) -> None:
        method = scope["method"]
        route = route_template(scope)
        key = (method, route, status)
        series = self._series.get(key)
        if series is None:
            series = (
                self.metrics.http_requests.labels(method, route, str(status)),
                self.metrics.http_duration.labels(method, route),
            )
            self._series[key] = series
        count, duration = series
        count.inc()
        duration.observe(seconds)
