"""``python -m ticketing_orders.reannounce``: an order's events published again, as they
were first published, so a consumer that lost one can repair (docs/concurrency.md)."""

from __future__ import annotations

from uuid import UUID, uuid4

import httpx
import pytest

from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import CancelReason, OrderCancelled, OrderCreated
from ticketing_common.testing import published, published_so_far
from ticketing_orders.reannounce import parse, run
from ticketing_orders.settings import Settings

from .conftest import Purchases, Tickets, Users


async def _order(client: httpx.AsyncClient, users: Users, buyer: UUID, ticket_id: UUID) -> UUID:
    response = await client.post(
        "/api/orders", json={"ticketId": str(ticket_id)}, headers=users.headers(buyer)
    )
    assert response.status_code == 201, response.text
    return UUID(response.json()["id"])


async def test_reannouncing_a_ticket_publishes_each_of_its_orders_events_again_as_they_were(
    client: httpx.AsyncClient, tickets: Tickets, users: Users, bus: EventBus, settings: Settings
) -> None:
    ticket, other = await tickets.listed(), await tickets.listed()
    first, second = uuid4(), uuid4()
    cancelled = await _order(client, users, first, ticket.id)
    response = await client.delete(f"/api/orders/{cancelled}", headers=users.headers(first))
    assert response.status_code == 204
    holder = await _order(client, users, second, ticket.id)
    await _order(client, users, uuid4(), other.id)
    originals = await published(bus, OrderCreated, 3)
    [original_cancel] = await published(bus, OrderCancelled, 1)

    assert await run(parse(["--ticket", str(ticket.id)]), settings) == 3

    created = await published(bus, OrderCreated, 5)
    again = created[3:]
    # The ticket's orders oldest first, each with the payload it was first published with
    # (a new event id, so the broker does not drop it as a duplicate).
    assert [event.data.id for event in again] == [cancelled, holder]
    assert [event.data for event in again] == [event.data for event in originals[:2]]
    assert {event.id for event in again}.isdisjoint(event.id for event in originals)
    cancels = await published(bus, OrderCancelled, 2)
    assert cancels[1].data == original_cancel.data


async def test_reannouncing_orders_by_id_or_all(
    client: httpx.AsyncClient, tickets: Tickets, users: Users, bus: EventBus, settings: Settings
) -> None:
    ticket, other = await tickets.listed(), await tickets.listed()
    one = await _order(client, users, uuid4(), ticket.id)
    two = await _order(client, users, uuid4(), other.id)
    assert await run(parse(["--order", str(two), "--order", str(uuid4())]), settings) == 1
    assert await run(parse(["--all"]), settings) == 2
    created = await published(bus, OrderCreated, 5)
    assert [event.data.id for event in created[2:]] == [two, one, two]
    assert await published_so_far(bus, OrderCancelled) == []


async def test_a_refunded_order_is_reannounced_as_refunded(
    client: httpx.AsyncClient, purchases: Purchases, users: Users, bus: EventBus, settings: Settings
) -> None:
    order = await purchases.paid(seller=uuid4())
    refund = await client.post(
        f"/api/orders/{order['id']}/refund", headers=users.headers(UUID(order["userId"]))
    )
    assert refund.status_code == 200
    [original] = await published(bus, OrderCancelled, 1)

    assert await run(parse(["--order", order["id"]]), settings) == 2

    again = (await published(bus, OrderCancelled, 2))[1]
    assert again.data == original.data
    assert again.data.reason == CancelReason.REFUNDED


def test_reannounce_names_what_to_reannounce() -> None:
    with pytest.raises(SystemExit) as usage:
        parse([])
    assert usage.value.code == 2
