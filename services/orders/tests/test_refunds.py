"""``POST /api/orders/{id}/refund``: the buyer takes back a paid order before check-in,
once; a refund and a scan of the same ticket never both succeed (docs/after-purchase.md;
docs/concurrency.md, "Refund and check-in")."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID, uuid4

import httpx
from sqlalchemy import select

from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import OrderCancelled
from ticketing_common.testing import published, published_so_far
from ticketing_orders.models import Admission

from .conftest import Purchases, ServeOrders, Tickets, Users

ROUNDS = 5


async def _refund(client: httpx.AsyncClient, users: Users, order: dict[str, Any]) -> httpx.Response:
    return await client.post(
        f"/api/orders/{order['id']}/refund", headers=users.headers(UUID(order["userId"]))
    )


async def _admission(db: Database, order_id: str) -> Admission:
    async with db.transaction() as session:
        found = await session.scalar(select(Admission).where(Admission.order_id == UUID(order_id)))
    assert found is not None
    return found


def _message(response: httpx.Response) -> str:
    message: str = response.json()["errors"][0]["message"]
    return message


async def test_the_buyer_refunds_a_paid_order_once_and_its_admission_is_voided(
    client: httpx.AsyncClient, purchases: Purchases, users: Users, bus: EventBus, db: Database
) -> None:
    order = await purchases.paid(seller=uuid4())

    stranger = await client.post(
        f"/api/orders/{order['id']}/refund", headers=users.headers(uuid4())
    )
    first = await _refund(client, users, order)
    second = await _refund(client, users, order)

    assert stranger.status_code == 404
    assert first.status_code == 200, first.text
    refunded = first.json()
    assert (refunded["status"], refunded["cancelReason"], refunded["version"]) == (
        "cancelled",
        "refunded",
        1,
    )
    assert refunded["admission"] is None
    assert (second.status_code, second.json()) == (200, refunded)
    assert (await _admission(db, order["id"])).voided_at is not None
    [event] = await published(bus, OrderCancelled, 1)
    assert (str(event.data.id), event.data.version, event.data.reason) == (
        order["id"],
        1,
        "refunded",
    )
    await asyncio.sleep(0.5)  # give a wrongly recorded second event time to be relayed
    assert len(await published_so_far(bus, OrderCancelled)) == 1


async def test_only_a_paid_order_not_yet_used_at_the_door_is_refunded(
    client: httpx.AsyncClient, purchases: Purchases, tickets: Tickets, users: Users
) -> None:
    seller, buyer = uuid4(), uuid4()
    ticket = await tickets.listed(seller_id=seller)
    unpaid = (
        await client.post(
            "/api/orders", json={"ticketId": str(ticket.id)}, headers=users.headers(buyer)
        )
    ).json()
    used = await purchases.paid(seller=seller)
    scan = await client.post(
        "/api/checkins", json={"code": used["admission"]["code"]}, headers=users.headers(seller)
    )
    assert scan.status_code == 201

    not_paid = await _refund(client, users, unpaid)
    at_the_door = await _refund(client, users, used)

    assert (not_paid.status_code, _message(not_paid)) == (409, "Only a paid order can be refunded")
    assert (at_the_door.status_code, _message(at_the_door)) == (
        409,
        "This ticket was already used at the door",
    )


async def test_no_refund_after_the_refund_period(
    serve_orders: ServeOrders, bus: EventBus, db: Database, users: Users
) -> None:
    async with serve_orders(REFUND_WINDOW_SECONDS=0) as served, served.client() as client:
        order = await Purchases(client, Tickets(bus, db), users).paid(seller=uuid4())
        late = await _refund(client, users, order)
        still = await client.get(
            f"/api/orders/{order['id']}", headers=users.headers(UUID(order["userId"]))
        )

    assert (late.status_code, _message(late)) == (409, "The refund period for this order has ended")
    assert still.json()["status"] == "complete"


async def test_a_refund_and_a_scan_at_once_never_both_succeed(
    client: httpx.AsyncClient, purchases: Purchases, users: Users, bus: EventBus, db: Database
) -> None:
    refunds = 0
    for _ in range(ROUNDS):
        seller = uuid4()
        order = await purchases.paid(seller=seller)

        refund, scan = await asyncio.gather(
            _refund(client, users, order),
            client.post(
                "/api/checkins",
                json={"code": order["admission"]["code"]},
                headers=users.headers(seller),
            ),
        )

        admission = await _admission(db, order["id"])
        read = await client.get(
            f"/api/orders/{order['id']}", headers=users.headers(UUID(order["userId"]))
        )
        if refund.status_code == 200:
            refunds += 1
            assert (scan.status_code, _message(scan)) == (
                400,
                "This ticket was refunded and does not admit",
            )
            assert (admission.voided_at is not None, admission.checked_in_at) == (True, None)
            assert (read.json()["status"], read.json()["admission"]) == ("cancelled", None)
        else:
            assert scan.status_code == 201, scan.text
            assert (refund.status_code, _message(refund)) == (
                409,
                "This ticket was already used at the door",
            )
            assert (admission.voided_at, admission.checked_in_at is not None) == (None, True)
            assert read.json()["status"] == "complete"
    # One order:cancelled (reason refunded) per refund that won, none for the others.
    if refunds:
        await published(bus, OrderCancelled, refunds)
    await asyncio.sleep(0.5)  # give a wrongly recorded event time to be relayed
    events = await published_so_far(bus, OrderCancelled)
    assert len(events) == refunds
    assert {event.data.reason for event in events} <= {"refunded"}
