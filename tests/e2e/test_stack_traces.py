"""`ticketing up --traces`: every service writes its spans under the data dir, and
`ticketing traces` prints a reservation that expired as one tree across orders,
tickets, payments, expiration and notifications (docs/operations.md, "Tracing")."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ticketing_common import tracing

from .conftest import EVENT_TIMEOUT, Stack, eventually, order_when_known, signed_up

pytestmark = pytest.mark.e2e

for _service in ("ticketing_payments", "ticketing_expiration", "ticketing_notifications"):
    if importlib.util.find_spec(f"{_service}.app") is None:
        pytest.skip(f"{_service} is not installed yet", allow_module_level=True)

# Every service the expiry reaches: notifications mails the buyer the expiry notice.
TRACED = ["expiration", "notifications", "orders", "payments", "tickets"]
TICKETING = [sys.executable, "-m", "ticketing_devstack"]


@pytest.fixture
def stack(short_window_stack: Stack) -> Stack:
    """The stack started with ``--traces`` and a short expiration window, shared with
    other modules."""
    return short_window_stack


def _reservation_trace(directory: Path) -> tracing.Trace | None:
    """The trace that reached every service, once its tickets' order:cancelled is in and
    it is one tree (a span is written when it ends, a consumer's maybe before the
    publish it is a child of)."""
    for found in tracing.traces_of(tracing.read_spans(sorted(directory.glob("*.jsonl")))):
        names = {(span.service, span.name) for span in found.spans}
        done = ("tickets", "process order:cancelled") in names and found.connected
        if found.services == TRACED and done:
            return found
    return None


def test_an_expired_reservation_is_printed_as_one_trace(stack: Stack) -> None:
    data_dir = stack.data_dir
    with signed_up(stack) as seller, signed_up(stack) as buyer:
        created = seller.post("/api/tickets", json={"title": "Trio", "price": 12.5})
        assert created.status_code == 201, created.text
        ticket_id = created.json()["id"]
        ordered = order_when_known(buyer, ticket_id)
        assert ordered.status_code == 201, ordered.text
        order_id = ordered.json()["id"]
        eventually(
            "the order never expired",
            lambda: buyer.get(f"/api/orders/{order_id}"),
            lambda response: response.json().get("status") == "cancelled",
        )

    deadline = time.monotonic() + EVENT_TIMEOUT
    while (found := _reservation_trace(data_dir / "traces")) is None:
        assert time.monotonic() < deadline, "no trace reached every service as one tree"
        time.sleep(0.2)
    # Each service wrote its own file.
    written = {path.name for path in (data_dir / "traces").glob("*.jsonl")}
    assert {f"{name}.jsonl" for name in TRACED} <= written

    printed = subprocess.run(
        [*TICKETING, "traces", "--data-dir", str(data_dir), "--trace", found.trace_id],
        env=dict(os.environ, COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    lines = printed.splitlines()
    assert lines[0].startswith(f"trace {found.trace_id}")
    assert lines[1].split()[:2] == ["orders", "POST"]
    for service, span in [
        ("expiration", "run expire_order"),
        ("orders", "process expiration:complete"),
        ("tickets", "process order:cancelled"),
        ("payments", "process order:cancelled"),
        ("notifications", "process order:cancelled"),
    ]:
        assert any(line.split()[:1] == [service] and span in line for line in lines), span
