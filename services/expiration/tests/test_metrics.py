"""Expiration's metrics (docs/operations.md#metrics): how late each firing is, read from /metrics
as Prometheus would."""

from __future__ import annotations

from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import Envelope
from ticketing_common.testing import ServedApp, wait_until
from ticketing_common.testing.metrics import scraped, value

from .conftest import order_created, worker_of

LATENESS = "ticketing_expiration_lateness_seconds"


async def test_each_firing_is_observed_with_its_lateness(
    expiration: ServedApp, bus: EventBus
) -> None:
    # Due two seconds ago: fired at once, at least two seconds late.
    late = order_created(expires_in=-2)
    await bus.publish(Envelope.of(late))
    await wait_until(lambda: worker_of(expiration).fired == 1)

    async with expiration.client() as client:
        samples = await scraped(client)

    assert value(samples, f"{LATENESS}_count") == 1
    assert value(samples, f"{LATENESS}_bucket", le="1.0") == 0
    assert value(samples, f"{LATENESS}_bucket", le="+Inf") == 1
    total = value(samples, f"{LATENESS}_sum")
    assert total is not None
    assert total >= 2
    consumer = {"consumer": "expiration-order-created"}
    assert value(samples, "ticketing_events_handled_total", **consumer) == 1
