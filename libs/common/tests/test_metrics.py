"""/metrics: every app's own registry, HTTP requests by route template, the outbox's
pending rows and publish lag, and the listeners' consumers, against real servers."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from uuid import uuid4

from fastapi import APIRouter, FastAPI

from ticketing_common.app import ServiceRuntime, create_service_app
from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import Envelope, TicketCreated
from ticketing_common.events.listener import ListenerGroup, RetryPolicy
from ticketing_common.events.outbox import OutboxRelay, record
from ticketing_common.metrics import Metrics
from ticketing_common.settings import ServiceSettings
from ticketing_common.testing import serve_app, wait_until
from ticketing_common.testing.metrics import scraped, value

SETTINGS = ServiceSettings(ENVIRONMENT="test", SERVICE_NAME="probe")
FAST = RetryPolicy(max_deliveries=3, base_delay=0.05, max_delay=0.2, ack_wait=5)


def items_router() -> APIRouter:
    router = APIRouter()

    @router.get("/items/{item_id}")
    async def item(item_id: str) -> dict[str, str]:
        return {"id": item_id}

    @router.get("/broken")
    async def broken() -> None:
        raise RuntimeError("a bug")

    return router


def ticket() -> TicketCreated:
    return TicketCreated(id=uuid4(), version=0, title="Gig", price=Decimal("12"), user_id=uuid4())


async def test_requests_are_counted_by_route_template_method_and_status() -> None:
    app = create_service_app(
        settings=SETTINGS,
        title="probe",
        routers=[items_router()],
        runtime=ServiceRuntime(),
        configure_logs=False,
    )
    async with serve_app(app) as served, served.client() as client:
        for item_id in ("1", "2", "3"):
            assert (await client.get(f"/items/{item_id}")).status_code == 200
        assert (await client.get("/nowhere")).status_code == 404
        assert (await client.get("/broken")).status_code == 500
        await client.get("/healthz")
        await client.get("/readyz")
        samples = await scraped(client)

    requests = "ticketing_http_requests_total"
    assert value(samples, requests, method="GET", route="/items/{item_id}", status="200") == 3
    assert value(samples, requests, method="GET", route="unmatched", status="404") == 1
    assert value(samples, requests, method="GET", route="/broken", status="500") == 1
    duration = "ticketing_http_request_duration_seconds_count"
    assert value(samples, duration, method="GET", route="/items/{item_id}") == 3
    # No raw path (an id) in any label, and neither the probes nor the scrape counted.
    routes = {sample.labels.get("route") for sample in samples if "route" in sample.labels}
    assert routes == {"/items/{item_id}", "unmatched", "/broken"}


async def test_metrics_are_not_served_to_a_request_that_came_through_a_proxy() -> None:
    app = create_service_app(
        settings=SETTINGS, title="probe", routers=[], runtime=ServiceRuntime(), configure_logs=False
    )
    async with serve_app(app) as served, served.client() as client:
        direct = await client.get("/metrics")
        proxied = await client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
        standard = await client.get("/metrics", headers={"Forwarded": "for=203.0.113.9"})

    assert direct.status_code == 200
    assert "ticketing_http_requests_total" in direct.text
    for refused in (proxied, standard):
        assert refused.status_code == 404
        assert refused.json() == {"errors": [{"message": "Not found"}]}


async def test_each_app_has_its_own_registry() -> None:
    def app() -> FastAPI:
        return create_service_app(
            settings=SETTINGS,
            title="probe",
            routers=[items_router()],
            runtime=ServiceRuntime(),
            configure_logs=False,
        )

    async with serve_app(app()) as first, serve_app(app()) as second:
        async with first.client() as client:
            await client.get("/items/1")
            first_samples = await scraped(client)
        async with second.client() as client:
            second_samples = await scraped(client)

    requests = "ticketing_http_requests_total"
    assert value(first_samples, requests, route="/items/{item_id}") == 1
    assert value(second_samples, requests, route="/items/{item_id}") is None


async def test_outbox_rows_pending_then_published_with_their_lag(
    database: Database, bus: EventBus
) -> None:
    metrics = Metrics()
    relay = OutboxRelay(database, bus, metrics=metrics)
    async with database.transaction() as session:
        for _ in range(3):
            await record(session, ticket())
    await metrics.refresh()
    registry = metrics.registry

    assert registry.get_sample_value("ticketing_outbox_pending") == 3
    assert registry.get_sample_value("ticketing_outbox_publish_lag_seconds_count") == 0

    assert await relay.publish_pending() == 3
    await metrics.refresh()

    assert registry.get_sample_value("ticketing_outbox_pending") == 0
    assert registry.get_sample_value("ticketing_outbox_publish_lag_seconds_count") == 3
    assert registry.get_sample_value("ticketing_outbox_published_total") == 3
    lag = registry.get_sample_value("ticketing_outbox_publish_lag_seconds_sum")
    assert lag is not None
    assert lag > 0


async def test_the_outbox_pending_gauge_keeps_its_value_when_the_database_is_away(
    bus: EventBus,
) -> None:
    metrics = Metrics()
    OutboxRelay(Database("postgresql://nobody@127.0.0.1:1/none"), bus, metrics=metrics)

    await metrics.refresh()  # logged, not raised: the scrape still answers

    assert metrics.registry.get_sample_value("ticketing_outbox_pending") == 0


async def test_a_dead_lettered_event_is_counted_with_its_redeliveries(bus: EventBus) -> None:
    async def failing(event: Envelope[TicketCreated]) -> None:
        raise RuntimeError("bug in handler")

    metrics = Metrics()
    group = ListenerGroup(bus, "orders", FAST, metrics=metrics)
    group.add(TicketCreated, failing)
    consumer = {"consumer": "orders-ticket-created"}
    runtime = ServiceRuntime(bus=bus, workers=[group.run])
    app = create_service_app(
        settings=SETTINGS,
        title="probe",
        routers=[],
        runtime=runtime,
        configure_logs=False,
        metrics=metrics,
    )
    async with serve_app(app) as served, served.client() as client:
        await bus.publish(Envelope.of(ticket()))
        await wait_until(lambda: group.dead_lettered == 1)
        samples = await scraped(client)

    assert value(samples, "ticketing_dead_letters_total", **consumer) == 1
    redeliveries = value(samples, "ticketing_event_redeliveries_total", **consumer)
    assert redeliveries == FAST.max_deliveries - 1
    assert value(samples, "ticketing_events_handled_total", **consumer) == 0
    assert value(samples, "ticketing_consumer_pending", **consumer) == 0


async def test_consumer_pending_is_what_jetstream_has_not_delivered_yet(bus: EventBus) -> None:
    async def handle(event: Envelope[TicketCreated]) -> None:
        pass

    metrics = Metrics()
    group = ListenerGroup(bus, "orders", FAST, metrics=metrics)
    group.add(TicketCreated, handle)
    # Run once so that its durable consumer exists, then stopped.
    stopping = asyncio.Event()
    running = asyncio.create_task(group.run(stopping))
    await bus.publish(Envelope.of(ticket()))
    await wait_until(lambda: group.handled == 1)
    stopping.set()
    await asyncio.wait_for(running, timeout=10)
    for _ in range(2):
        await bus.publish(Envelope.of(ticket()))

    await metrics.refresh()

    consumer = {"consumer": "orders-ticket-created"}
    assert metrics.registry.get_sample_value("ticketing_consumer_pending", consumer) == 2
    assert metrics.registry.get_sample_value("ticketing_events_handled_total", consumer) == 1


async def test_metrics_are_served_in_prometheus_text_format() -> None:
    app = create_service_app(
        settings=SETTINGS, title="probe", routers=[], runtime=ServiceRuntime(), configure_logs=False
    )
    async with serve_app(app) as served, served.client() as client:
        response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    assert "# TYPE ticketing_http_requests_total counter" in response.text
