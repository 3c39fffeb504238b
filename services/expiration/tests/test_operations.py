"""Operator endpoints: GET /stats (lateness of firings) and /readyz (NATS and Redis)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import Envelope
from ticketing_common.logs import JsonFormatter
from ticketing_common.testing import ServedApp, wait_until

from .conftest import order_created, worker_of


def fired(served: ServedApp, count: int) -> Callable[[], bool]:
    return lambda: worker_of(served).fired == count


async def test_stats_before_any_firing_count_zero_and_no_figures(expiration: ServedApp) -> None:
    async with expiration.client() as client:
        response = await client.get("/stats")

    assert response.status_code == 200
    assert response.json() == {
        "count": 0,
        "window": 10_000,
        "p50": None,
        "p90": None,
        "p99": None,
        "max": None,
        "fired": 0,
        "failedAttempts": 0,
    }


async def test_stats_count_grows_with_each_firing_and_reports_percentiles(
    expiration: ServedApp, bus: EventBus
) -> None:
    async with expiration.client() as client:
        for expected in (1, 2, 3):
            await bus.publish(Envelope.of(order_created(expires_in=-0.5)))
            await wait_until(fired(expiration, expected))
            stats = (await client.get("/stats")).json()
            assert stats["count"] == expected
            assert stats["fired"] == expected

    for figure in ("p50", "p90", "p99", "max"):
        assert isinstance(stats[figure], float | int)
    assert stats["p50"] <= stats["p90"] <= stats["p99"] <= stats["max"]
    assert stats["p50"] >= 500  # each expiresAt was half a second in the past


async def test_readyz_is_200_with_nats_and_redis_up(expiration: ServedApp) -> None:
    async with expiration.client() as client:
        response = await client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


class Lines(logging.Handler):
    """Log records as the service writes them: JSON lines."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter("expiration"))
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


async def test_every_firing_logs_its_lateness_as_a_json_field(
    expiration: ServedApp, bus: EventBus
) -> None:
    lines = Lines()
    logger = logging.getLogger("ticketing.expiration")
    logger.addHandler(lines)
    try:
        order = order_created(expires_in=-2)
        await bus.publish(Envelope.of(order))
        await wait_until(fired(expiration, 1))
    finally:
        logger.removeHandler(lines)

    [line] = [line for line in lines.lines if line["message"] == "expiration fired"]
    assert line["order_id"] == str(order.id)
    lateness = line["lateness_ms"]
    assert isinstance(lateness, float)
    assert lateness >= 2000
