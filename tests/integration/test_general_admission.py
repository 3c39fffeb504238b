"""General admission across services (docs/general-admission.md, rule 21): buyers race
for the units of one listing in orders, and the counts tickets shows buyers and the
seller come to equal what orders decided — after the race, a cancel and a payment."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID, uuid4

from ticketing_common.events.bus import EventBus
from ticketing_common.testing import ServedApp, wait_until

from .conftest import SETTLE_SECONDS, Marketplace, dead_letters

UNITS = 6
BUYERS = 8
EACH = 2


async def test_units_raced_for_cancelled_and_paid_are_counted_by_tickets_as_orders_decided(
    marketplace: Marketplace, payments_app: ServedApp, bus: EventBus
) -> None:
    seller = uuid4()
    created = await marketplace.tickets.post(
        "/api/tickets",
        json={"title": "Standing", "price": "10.00", "quantity": UNITS},
        headers=marketplace.as_user(seller),
    )
    assert created.status_code == 201, created.text
    listing = UUID(created.json()["id"])
    await marketplace.replica_at(listing, 0)

    buyers = [uuid4() for _ in range(BUYERS)]
    answers = await asyncio.gather(
        *(
            marketplace.orders.post(
                "/api/orders",
                json={"ticketId": str(listing), "quantity": EACH},
                headers=marketplace.as_user(buyer),
            )
            for buyer in buyers
        )
    )
    assert {answer.status_code for answer in answers} <= {201, 409}
    won = [
        (buyer, a.json()) for buyer, a in zip(buyers, answers, strict=True) if a.status_code == 201
    ]
    assert 1 <= len(won) <= UNITS // EACH
    assert all(order["quantity"] == EACH and order["total"] == 20 for _, order in won)

    async def units_are(held: int, sold: int) -> dict[str, Any] | None:
        units: dict[str, Any] = (await marketplace.ticket(listing))["units"]
        expected = {"total": UNITS, "available": UNITS - held - sold, "held": held, "sold": sold}
        return units if units == expected else None

    await wait_until(lambda: units_are(EACH * len(won), 0), timeout=SETTLE_SECONDS)

    # The first winner cancels: its units are back on sale.
    cancelling, cancelled = won[0]
    answer = await marketplace.orders.delete(
        f"/api/orders/{cancelled['id']}", headers=marketplace.as_user(cancelling)
    )
    assert answer.status_code == 204, answer.text
    held = EACH * (len(won) - 1)
    await wait_until(lambda: units_are(held, 0), timeout=SETTLE_SECONDS)

    # Someone pays for the units just returned: the listing counts them sold.
    payer = uuid4()
    ordered = await marketplace.orders.post(
        "/api/orders",
        json={"ticketId": str(listing), "quantity": EACH},
        headers=marketplace.as_user(payer),
    )
    assert ordered.status_code == 201, ordered.text
    async with payments_app.client() as payments:

        async def paid() -> int | None:
            # 404 until payments has heard order:created.
            response = await payments.post(
                "/api/payments",
                json={"token": "tok_visa", "orderId": ordered.json()["id"]},
                headers=marketplace.as_user(payer),
            )
            return None if response.status_code == 404 else response.status_code

        assert await wait_until(paid, timeout=SETTLE_SECONDS) == 201
    await wait_until(lambda: units_are(held, EACH), timeout=SETTLE_SECONDS)

    mine = await marketplace.tickets.get("/api/tickets/mine", headers=marketplace.as_user(seller))
    assert mine.json()["totals"] == {
        "forSale": UNITS - held - EACH,
        "reserved": held,
        "sold": EACH,
        "withdrawn": 0,
        "revenue": 20,
    }
    assert await dead_letters(bus) == 0
