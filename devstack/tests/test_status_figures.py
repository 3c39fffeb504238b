"""`ticketing status`'s key figures, read from a real orders service's /metrics."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from decimal import Decimal
from pathlib import Path
from uuid import uuid4

import pytest

from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import Envelope, TicketCreated
from ticketing_common.events.listener import ListenerGroup
from ticketing_common.testing import ServiceHarness, signed_in_headers, wait_until
from ticketing_devstack.figures import histogram_quantile
from ticketing_devstack.instance import ChildRecord, InstanceLock
from ticketing_orders.app import SPEC as ORDERS

UNLIMITED_RATE = "100000/minute"


def test_quantiles_interpolate_within_their_bucket_as_prometheus_does() -> None:
    # 10 observations: 4 under 0.1 s, 4 more under 0.2 s, 2 under 1 s.
    buckets = [(0.1, 4.0), (0.2, 8.0), (1.0, 10.0), (float("inf"), 10.0)]

    assert histogram_quantile(0.5, buckets) == pytest.approx(0.125)
    assert histogram_quantile(0.9, buckets) == pytest.approx(0.6)
    assert histogram_quantile(0.5, [(0.1, 0.0), (float("inf"), 0.0)]) is None
    # Beyond the last finite bound: the bound is all that is known.
    assert histogram_quantile(0.99, [(0.1, 1.0), (float("inf"), 3.0)]) == 0.1


async def _ticketing(*args: str) -> tuple[int, str]:
    """The CLI in a child process, awaited: the service it scrapes runs in this loop."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ticketing_devstack",
        *args,
        env=dict(os.environ, COLUMNS="200"),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_status_prints_the_figures_of_the_running_services(
    harness: ServiceHarness, bus: EventBus, tmp_path: Path
) -> None:
    overrides = {"ORDER_RATE_PER_USER": UNLIMITED_RATE, "ORDER_RATE_PER_CLIENT": UNLIMITED_RATE}
    settings = await harness.settings(ORDERS, **overrides)
    async with harness.serve(ORDERS, **overrides) as orders, orders.client() as client:
        ticket = TicketCreated(
            id=uuid4(), version=0, title="Gig", price=Decimal("10"), user_id=uuid4()
        )
        await bus.publish(Envelope.of(ticket))
        await wait_until(lambda: orders.component(ListenerGroup).handled == 1)
        body = {"ticketId": str(ticket.id)}
        for _ in range(2):
            buyer = signed_in_headers(settings, user_id=uuid4())
            await client.post("/api/orders", json=body, headers=buyer)

        # A process whose command line names the service's port, as `ticketing up`
        # starts each service (uvicorn ... --port N): status finds the port there.
        port = orders.url.rsplit(":", 1)[1]
        stand_in = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import time; time.sleep(120)", "--port", port
        )
        try:
            with InstanceLock.acquire(tmp_path, "http://127.0.0.1:8123") as lock:
                lock.record([ChildRecord.of("orders", stand_in.pid)])
                code, out = await _ticketing("status", "--json", "--data-dir", str(tmp_path))
                text_code, text = await _ticketing("status", "--data-dir", str(tmp_path))
        finally:
            stand_in.kill()
            await stand_in.wait()

    figures = json.loads(out)["figures"]
    assert code == 0
    assert figures["services"] == ["orders"]
    assert figures["unreadable"] == []
    assert figures["reservations"]["reserved"] == 1
    assert figures["reservations"]["conflict"] == 1
    assert figures["requests"] == 2
    assert figures["deadLetters"] == 0
    assert figures["consumerPending"] == 0
    assert figures["outboxPending"] == {"orders": 0}
    assert figures["expirationLatenessMs"] == {"p50": None, "p99": None}
    assert text_code == 0
    assert "reservations      conflict 1, reserved 1" in text
    assert "requests          2 (0 server errors)" in text
