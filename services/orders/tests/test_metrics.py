"""Orders' metrics (docs/operations.md#metrics): reservations by outcome, its routes by template,
its outbox and consumers, read from /metrics as Prometheus would."""

from __future__ import annotations

from uuid import uuid4

import httpx

from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import OrderCreated
from ticketing_common.testing import published, wait_until
from ticketing_common.testing.metrics import scraped, value

from .conftest import ServeOrders, Tickets, Users

RESERVATIONS = "ticketing_orders_reservations_total"


async def test_a_reservation_and_a_conflict_move_the_reservation_counters(
    client: httpx.AsyncClient, tickets: Tickets, users: Users
) -> None:
    ticket = await tickets.listed()
    body = {"ticketId": str(ticket.id)}

    first = await client.post("/api/orders", json=body, headers=users.headers(uuid4()))
    second = await client.post("/api/orders", json=body, headers=users.headers(uuid4()))
    samples = await scraped(client)

    assert (first.status_code, second.status_code) == (201, 409)
    assert value(samples, RESERVATIONS, outcome="reserved") == 1
    assert value(samples, RESERVATIONS, outcome="conflict") == 1
    assert value(samples, RESERVATIONS, outcome="refused") == 0
    requests = "ticketing_http_requests_total"
    assert value(samples, requests, method="POST", route="/api/orders", status="201") == 1
    assert value(samples, requests, method="POST", route="/api/orders", status="409") == 1


async def test_a_hold_over_the_limit_is_counted_as_refused(
    serve_orders: ServeOrders, tickets: Tickets, users: Users
) -> None:
    buyer = users.headers(uuid4())
    async with serve_orders(MAX_OPEN_ORDERS_PER_USER=1) as served, served.client() as client:
        held = await tickets.listed()
        other = await tickets.listed()
        first = await client.post("/api/orders", json={"ticketId": str(held.id)}, headers=buyer)
        refused = await client.post("/api/orders", json={"ticketId": str(other.id)}, headers=buyer)
        unknown = await client.post("/api/orders", json={"ticketId": str(uuid4())}, headers=buyer)
        samples = await scraped(client)

    assert (first.status_code, refused.status_code, unknown.status_code) == (201, 429, 404)
    assert value(samples, RESERVATIONS, outcome="reserved") == 1
    assert value(samples, RESERVATIONS, outcome="refused") == 1
    assert value(samples, RESERVATIONS, outcome="rejected") == 1


async def test_order_routes_are_labelled_by_template_not_by_order_id(
    client: httpx.AsyncClient, tickets: Tickets, users: Users
) -> None:
    ticket = await tickets.listed()
    buyer = users.headers(uuid4())
    order = (
        await client.post("/api/orders", json={"ticketId": str(ticket.id)}, headers=buyer)
    ).json()

    await client.get(f"/api/orders/{order['id']}", headers=buyer)
    await client.get(f"/api/orders/{uuid4()}", headers=buyer)
    samples = await scraped(client)

    requests = "ticketing_http_requests_total"
    route = "/api/orders/{order_id}"
    assert value(samples, requests, method="GET", route=route, status="200") == 1
    assert value(samples, requests, method="GET", route=route, status="404") == 1
    assert not [sample for sample in samples if order["id"] in str(sample.labels)]


async def test_the_order_created_event_is_observed_leaving_the_outbox(
    client: httpx.AsyncClient, tickets: Tickets, users: Users, bus: EventBus
) -> None:
    ticket = await tickets.listed()
    await client.post(
        "/api/orders", json={"ticketId": str(ticket.id)}, headers=users.headers(uuid4())
    )
    await published(bus, OrderCreated, 1)

    async def lag_observed() -> bool:
        samples = await scraped(client)
        return value(samples, "ticketing_outbox_publish_lag_seconds_count") == 1

    await wait_until(lag_observed)
    samples = await scraped(client)
    assert value(samples, "ticketing_outbox_pending") == 0
    assert value(samples, "ticketing_outbox_published_total") == 1
    # The ticket's event reached orders' consumer: handled, nothing left pending.
    consumer = {"consumer": "orders-ticket-created"}
    assert value(samples, "ticketing_events_handled_total", **consumer) == 1
    assert value(samples, "ticketing_consumer_pending", **consumer) == 0
    assert value(samples, "ticketing_dead_letters_total", **consumer) == 0
