"""Expiration's rules: schedule a job at an order's expiresAt; when it runs, say so.

A firing publishes expiration:complete with an event id derived from the order id,
so a second firing of the same order (a retried job, a rescheduled one) carries the
same id and the broker's de-duplication drops it; orders treats a repeat as a no-op
anyway. Each firing's lateness (job start - expiresAt) is logged and kept for
``GET /stats``.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID, uuid5

from prometheus_client import Histogram

from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import Envelope, ExpirationComplete
from ticketing_common.metrics import LATENESS_BUCKETS, Metrics
from ticketing_expiration.repository import Job, JobStore

logger = logging.getLogger("ticketing.expiration")

# Fixed for ever: changing it would give a refiring order a new event id.
EXPIRATION_EVENT_NAMESPACE = UUID("6f1c1d0e-5b0a-5d47-9a43-4f0e8e1c2a77")


def expiration_event_id(order_id: UUID) -> UUID:
    """The one event id of an order's expiration:complete, whoever publishes it, how often."""
    return uuid5(EXPIRATION_EVENT_NAMESPACE, str(order_id))


def percentile(values: Iterable[float], p: float) -> float | None:
    """Nearest-rank percentile (``p`` in 0-100); None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class LatenessSummary:
    """Lateness of recent firings, in milliseconds (None while there are none)."""

    count: int
    window: int
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None


class LatenessStats:
    """The lateness of the last ``window`` firings (a bounded deque: memory stays flat),
    and of every firing in the ``ticketing_expiration_lateness_seconds`` histogram."""

    def __init__(self, window: int, metrics: Metrics | None = None) -> None:
        self.window = window
        self._recent: deque[float] = deque(maxlen=window)
        self.lateness = Histogram(
            "ticketing_expiration_lateness_seconds",
            "How late an order's expiration job started, relative to the order's expiresAt.",
            buckets=LATENESS_BUCKETS,
            registry=(metrics or Metrics()).registry,
        )

    def record(self, lateness_ms: float) -> None:
        self._recent.append(lateness_ms)
        # A job that starts early (clock skew between replicas) counts as on time.
        self.lateness.observe(max(lateness_ms, 0.0) / 1000)

    def summary(self) -> LatenessSummary:
        recent = list(self._recent)
        return LatenessSummary(
            count=len(recent),
            window=self.window,
            p50=percentile(recent, 50),
            p90=percentile(recent, 90),
            p99=percentile(recent, 99),
            max=max(recent, default=None),
        )


async def schedule_expirations(store: JobStore, jobs: Sequence[Job]) -> list[bool]:
    """Schedule the orders' expirations at once; False where one was already scheduled
    (a redelivery)."""
    scheduled = await store.schedule_all(jobs)
    for job, new in zip(jobs, scheduled, strict=True):
        # One line per purchase costs more than the scheduling itself (formatting, and
        # the log pipeline after it): only the unusual repeat is told at INFO; the firing
        # is too.
        logger.log(
            logging.DEBUG if new else logging.INFO,
            "expiration scheduled" if new else "expiration already scheduled",
            extra={"order_id": str(job.order_id), "expires_at": job.expires_at.isoformat()},
        )
    return scheduled


async def fire_expiration(
    bus: EventBus,
    stats: LatenessStats,
    *,
    order_id: UUID,
    expires_at: datetime,
    started: datetime,
    attempt: int = 1,
) -> Envelope[ExpirationComplete]:
    """Publish expiration:complete for the order; raises if the broker did not take it."""
    envelope = Envelope.of(
        ExpirationComplete(order_id=order_id), event_id=expiration_event_id(order_id)
    )
    await bus.publish(envelope)
    lateness_ms = (started - expires_at).total_seconds() * 1000
    stats.record(lateness_ms)
    logger.info(
        "expiration fired",
        extra={
            "order_id": str(order_id),
            "event_id": str(envelope.id),
            "lateness_ms": round(lateness_ms, 2),
            "attempt": attempt,
        },
    )
    return envelope
