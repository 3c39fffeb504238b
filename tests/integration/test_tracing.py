"""One reservation is one trace: orders' POST, its outbox publish, every service's
handling of order:created, expiration's job firing when the order expires, orders'
cancellation and the other services' handling of order:cancelled, connected by the
trace context carried in the events and the delayed job (docs/operations.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from opentelemetry.instrumentation.utils import suppress_http_instrumentation

import ticketing_expiration.app
import ticketing_orders.app
import ticketing_payments.app
import ticketing_tickets.app
from ticketing_common import tracing
from ticketing_common.db import Database
from ticketing_common.testing import ServiceHarness, wait_until

from .conftest import SETTLE_SECONDS, UNLIMITED_RATE, Marketplace

SERVICES = ["expiration", "orders", "payments", "tickets"]
# (service, span) that the reservation's trace must hold, each under the one root.
EXPECTED = {
    ("orders", "publish order:created"),
    ("tickets", "process order:created"),
    ("payments", "process order:created"),
    ("expiration", "process order:created"),
    ("expiration", "run expire_order"),
    ("expiration", "publish expiration:complete"),
    ("orders", "process expiration:complete"),
    ("orders", "publish order:cancelled"),
    ("tickets", "process order:cancelled"),
    ("payments", "process order:cancelled"),
}


@pytest.fixture
async def traced(harness: ServiceHarness, tmp_path: Path) -> AsyncIterator[Marketplace]:
    """Tickets, orders (orders expire after 2 s), payments and expiration, each writing
    its spans to a traces file of its own, as `ticketing up --traces` has them."""
    async with AsyncExitStack() as stack:
        served = {}
        for spec, overrides in (
            (ticketing_tickets.app.SPEC, {}),
            (
                ticketing_orders.app.SPEC,
                {
                    "EXPIRATION_WINDOW_SECONDS": 2,
                    "ORDER_RATE_PER_USER": UNLIMITED_RATE,
                    "ORDER_RATE_PER_CLIENT": UNLIMITED_RATE,
                },
            ),
            (ticketing_payments.app.SPEC, {}),
            (ticketing_expiration.app.SPEC, {}),
        ):
            traces_file = str(tmp_path / f"{spec.name}.jsonl")
            served[spec.name] = await stack.enter_async_context(
                harness.serve(spec, TRACES_FILE=traces_file, **overrides)
            )
        orders_db = Database(await harness.database_url(ticketing_orders.app.SPEC), pool_size=2)
        stack.push_async_callback(orders_db.dispose)
        tickets = await stack.enter_async_context(served["tickets"].client())
        orders = await stack.enter_async_context(served["orders"].client())
        settings = await harness.settings(ticketing_tickets.app.SPEC)
        yield Marketplace(tickets, orders, orders_db, settings)


def reservation_trace(directory: Path) -> tracing.Trace | None:
    """The trace holding every expected span (the test makes one reservation), once
    it does and is one tree. (A span is written when it ends: a consumer's may be
    written a moment before the publish it is a child of.)"""
    for found in tracing.traces_of(tracing.read_spans(sorted(directory.glob("*.jsonl")))):
        if {(span.service, span.name) for span in found.spans} >= EXPECTED and found.connected:
            return found
    return None


async def test_a_reservation_that_expires_is_one_trace_across_the_services(
    traced: Marketplace, tmp_path: Path
) -> None:
    # The test's own requests start no trace: their client is not a service.
    with suppress_http_instrumentation():
        listed = await traced.list_ticket(uuid4())
        ticket_id = UUID(listed["id"])
        await traced.replica_at(ticket_id, 0)
        buyer = traced.as_user(uuid4())
        ordered = await traced.orders.post(
            "/api/orders", json={"ticketId": str(ticket_id)}, headers=buyer
        )
        assert ordered.status_code == 201, ordered.text
        order_id = ordered.json()["id"]

        async def expired() -> bool:
            order = await traced.orders.get(f"/api/orders/{order_id}", headers=buyer)
            return bool(order.json()["status"] == "cancelled")

        await wait_until(expired, timeout=SETTLE_SECONDS)

    # The other services' handling of it may still be under way: wait for their spans.
    found = await wait_until(lambda: reservation_trace(tmp_path), timeout=SETTLE_SECONDS)

    [root] = found.roots
    assert (root.service, root.kind) == ("orders", "SERVER")
    assert root.name.startswith("POST /api/orders")
    assert found.services == SERVICES
    # Each hop is the child of the one before it: publish → process → (job) → publish.
    by_id = {span.span: span for span in found.spans}

    def parent_of(service: str, name: str) -> tuple[str, str]:
        # The first, should a handler have been retried.
        span = next(s for s in found.spans if (s.service, s.name) == (service, name))
        assert span.parent is not None
        parent = by_id[span.parent]
        return parent.service, parent.name

    assert parent_of("orders", "publish order:created")[0] == "orders"
    assert parent_of("expiration", "process order:created") == ("orders", "publish order:created")
    assert parent_of("expiration", "run expire_order") == ("expiration", "process order:created")
    assert parent_of("expiration", "publish expiration:complete") == (
        "expiration",
        "run expire_order",
    )
    assert parent_of("orders", "process expiration:complete") == (
        "expiration",
        "publish expiration:complete",
    )
    assert parent_of("tickets", "process order:cancelled") == ("orders", "publish order:cancelled")
    # The database's and Redis's own spans are part of it, under the services' spans.
    kinds = {(span.service, span.kind) for span in found.spans}
    assert {("orders", "CLIENT"), ("tickets", "CLIENT"), ("expiration", "CLIENT")} <= kinds
