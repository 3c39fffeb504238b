"""Exactly one of any number of concurrent orders for one ticket succeeds (SPEC §3)."""

from __future__ import annotations

import asyncio
from collections import Counter
from uuid import uuid4

import httpx
from sqlalchemy import func, select

from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import OrderCreated
from ticketing_common.testing import published
from ticketing_orders.models import Order

from .conftest import Tickets, Users

BUYERS = 50
ROUNDS = 3


async def test_fifty_concurrent_buyers_of_one_ticket_get_exactly_one_201_and_49_409s(
    client: httpx.AsyncClient, tickets: Tickets, users: Users, db: Database, bus: EventBus
) -> None:
    winners = []
    for _ in range(ROUNDS):
        ticket = await tickets.listed()
        responses = await asyncio.gather(
            *(
                client.post(
                    "/api/orders",
                    json={"ticketId": str(ticket.id)},
                    headers=users.headers(uuid4()),
                )
                for _ in range(BUYERS)
            )
        )
        statuses = Counter(response.status_code for response in responses)
        assert statuses == {201: 1, 409: BUYERS - 1}, statuses
        [winner] = [response.json() for response in responses if response.status_code == 201]
        winners.append(winner["id"])
        async with db.transaction() as session:
            held = await session.scalar(
                select(func.count()).select_from(Order).where(Order.ticket_id == ticket.id)
            )
        assert held == 1

    events = await published(bus, OrderCreated, ROUNDS)
    assert sorted(str(event.data.id) for event in events) == sorted(winners)
