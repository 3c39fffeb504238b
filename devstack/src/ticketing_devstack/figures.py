"""The key figures of a running local stack, read from each service's ``/metrics``
(for ``ticketing status``).

A service's port is read from its process's command line (``uvicorn ... --port N``,
as ``stack.service_argv`` starts it), so nothing but the running processes is
needed. Figures sum the series of every service; gauges that every replica reads
from a shared source (a consumer's pending count) are summed too, as only one
process runs per service here.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import httpx
import psutil
from prometheus_client.parser import text_string_to_metric_families

from ticketing_common.metrics import METRICS_PATH

HOST = "127.0.0.1"
SCRAPE_TIMEOUT_SECONDS = 3.0


@dataclass(frozen=True)
class Sample:
    name: str
    labels: Mapping[str, str]
    value: float


@dataclass
class Figures:
    """What ``ticketing status`` prints, summed over the services it could read."""

    services: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    requests: int = 0
    server_errors: int = 0
    reservations: dict[str, int] = field(default_factory=dict)
    payment_attempts: dict[str, int] = field(default_factory=dict)
    payments: dict[str, int] = field(default_factory=dict)
    outbox_pending: dict[str, int] = field(default_factory=dict)
    consumer_pending: int = 0
    dead_letters: int = 0
    expirations: int = 0
    lateness_p50_ms: float | None = None
    lateness_p99_ms: float | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "services": self.services,
            "unreadable": self.unreadable,
            "requests": self.requests,
            "serverErrors": self.server_errors,
            "reservations": self.reservations,
            "paymentAttempts": self.payment_attempts,
            "payments": self.payments,
            "outboxPending": self.outbox_pending,
            "consumerPending": self.consumer_pending,
            "deadLetters": self.dead_letters,
            "expirations": self.expirations,
            "expirationLatenessMs": {"p50": self.lateness_p50_ms, "p99": self.lateness_p99_ms},
        }

    def lines(self) -> list[str]:
        def outcomes(counts: Mapping[str, int]) -> str:
            shown = [f"{outcome} {count}" for outcome, count in sorted(counts.items()) if count]
            return ", ".join(shown) or "none"

        def ms(value: float | None) -> str:
            return "-" if value is None else f"{value:.0f} ms"

        pending = ", ".join(f"{name} {n}" for name, n in sorted(self.outbox_pending.items()))
        lines = [
            f"requests          {self.requests} ({self.server_errors} server errors)",
            f"reservations      {outcomes(self.reservations)}",
            f"payment requests  {outcomes(self.payment_attempts)}",
            f"payments          {outcomes(self.payments)}",
            f"outbox pending    {pending or '-'}",
            f"consumer pending  {self.consumer_pending}",
            f"dead letters      {self.dead_letters}",
            f"expirations       {self.expirations} "
            f"(lateness p50 {ms(self.lateness_p50_ms)}, p99 {ms(self.lateness_p99_ms)})",
        ]
        if self.unreadable:
            lines.append(f"no metrics from   {', '.join(self.unreadable)}")
        return lines


def parse(text: str) -> list[Sample]:
    """Every sample of a Prometheus text exposition."""
    return [
        Sample(sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The ``q`` quantile from cumulative ``(upper bound, count)`` buckets, interpolated
    linearly inside its bucket, as Prometheus' ``histogram_quantile`` does. None
    without observations; the highest finite bound when it falls in ``+Inf``."""
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] == 0:
        return None
    rank = q * ordered[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def figures_of(scraped: Mapping[str, Sequence[Sample]], unreadable: Sequence[str]) -> Figures:
    """The figures from each service's samples (by service name)."""
    figures = Figures(services=sorted(scraped), unreadable=sorted(unreadable))
    lateness: dict[float, float] = {}
    for service, samples in scraped.items():
        for sample in samples:
            if sample.name == "ticketing_expiration_lateness_seconds_bucket":
                bound = float(sample.labels["le"])
                lateness[bound] = lateness.get(bound, 0.0) + sample.value
            else:
                _count(figures, service, sample)
    figures.lateness_p50_ms = _ms(histogram_quantile(0.5, lateness.items()))
    figures.lateness_p99_ms = _ms(histogram_quantile(0.99, lateness.items()))
    return figures


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _count(figures: Figures, service: str, sample: Sample) -> None:
    value = int(sample.value)
    match sample.name:
        case "ticketing_http_requests_total":
            figures.requests += value
            if sample.labels.get("status", "").startswith("5"):
                figures.server_errors += value
        case "ticketing_orders_reservations_total":
            _add(figures.reservations, sample.labels["outcome"], value)
        case "ticketing_payments_attempts_total":
            _add(figures.payment_attempts, sample.labels["outcome"], value)
        case "ticketing_payments":
            _add(figures.payments, sample.labels["status"], value)
        case "ticketing_outbox_pending":
            _add(figures.outbox_pending, service, value)
        case "ticketing_consumer_pending":
            figures.consumer_pending += value
        case "ticketing_dead_letters_total":
            figures.dead_letters += value
        case "ticketing_expiration_lateness_seconds_count":
            figures.expirations += value


def _add(counts: dict[str, int], key: str, value: int) -> None:
    counts[key] = counts.get(key, 0) + value


def service_port(pid: int) -> int | None:
    """The ``--port`` on the process's command line (None if it is gone or has none)."""
    try:
        argv = psutil.Process(pid).cmdline()
    except psutil.Error:
        return None
    for flag, value in itertools.pairwise(argv):
        if flag == "--port" and value.isdigit():
            return int(value)
    return None


def scrape(ports: Mapping[str, int | None]) -> Figures:
    """The figures of the services at ``ports`` (by name; None: not running)."""
    scraped: dict[str, list[Sample]] = {}
    unreadable: list[str] = []
    with httpx.Client(timeout=SCRAPE_TIMEOUT_SECONDS) as client:
        for name, port in ports.items():
            if port is None:
                unreadable.append(name)
                continue
            try:
                response = client.get(f"http://{HOST}:{port}{METRICS_PATH}")
                response.raise_for_status()
                scraped[name] = parse(response.text)
            except (httpx.HTTPError, ValueError):
                unreadable.append(name)
    return figures_of(scraped, unreadable)
