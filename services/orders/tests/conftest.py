"""Fixtures: orders served over real HTTP on a fresh, migrated PostgreSQL database and a
fresh NATS namespace (the shared harness, ``ticketing_common.testing.service``); tickets
reach its replica through real ticket events on the bus."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import select

from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import Envelope, PaymentCreated, TicketCreated
from ticketing_common.spec import ServiceSpec
from ticketing_common.testing import Serve, ServedApp, Users, wait_until
from ticketing_orders.app import SPEC
from ticketing_orders.models import TicketReplica
from ticketing_orders.settings import Settings

# What the test modules import from here.
__all__ = ["Purchases", "ServeOrders", "Tickets", "Users", "email_of", "replica_ticket"]

ServeOrders = Serve

# Every test's requests come from one address and many from one buyer: the rates are
# raised for them all, and the tests of the rates themselves set their own.
UNLIMITED_RATE = "100000/minute"


@pytest.fixture(scope="session")
def service_spec() -> ServiceSpec[Settings]:
    return SPEC


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {
        "EXPIRATION_WINDOW_SECONDS": 900,
        "ORDER_RATE_PER_USER": UNLIMITED_RATE,
        "ORDER_RATE_PER_CLIENT": UNLIMITED_RATE,
    }


@pytest.fixture
def serve_orders(serve: Serve) -> ServeOrders:
    return serve


@pytest.fixture
def orders(served: ServedApp) -> ServedApp:
    return served


async def replica_ticket(db: Database, ticket_id: UUID) -> TicketReplica | None:
    async with db.transaction() as session:
        return await session.scalar(select(TicketReplica).where(TicketReplica.id == ticket_id))


@dataclass
class Tickets:
    """Lists tickets the way the tickets service does: by publishing ticket:created."""

    bus: EventBus
    db: Database

    async def listed(
        self,
        *,
        seller_id: UUID | None = None,
        title: str = "Concert",
        price: str = "20.50",
        units: int | None = None,
    ) -> TicketCreated:
        """A per-seat ticket, or with ``units`` a general-admission listing of that many."""
        ticket = TicketCreated(
            id=uuid4(),
            version=0,
            title=title,
            price=Decimal(price),
            user_id=seller_id or uuid4(),
            general_admission=units is not None,
            quantity=units or 1,
        )
        await self.bus.publish(Envelope.of(ticket))

        async def replicated() -> bool:
            return await replica_ticket(self.db, ticket.id) is not None

        await wait_until(replicated)
        return ticket


@pytest.fixture
def tickets(bus: EventBus, db: Database, orders: ServedApp) -> Tickets:
    return Tickets(bus, db)


def email_of(user_id: UUID) -> str:
    """The email in a session the harness signs in (``Users.headers``)."""
    return f"user-{user_id.hex[:8]}@example.com"


@dataclass
class Purchases:
    """Buys tickets the way the system does: an order over HTTP, then the payment
    service's payment:created on the bus."""

    client: httpx.AsyncClient
    tickets: Tickets
    users: Users

    async def paid(self, *, seller: UUID, buyer: UUID | None = None) -> dict[str, Any]:
        """A complete order (its JSON, with its admission) of a new ticket of ``seller``."""
        buyer = buyer or uuid4()
        ticket = await self.tickets.listed(seller_id=seller)
        created = await self.client.post(
            "/api/orders", json={"ticketId": str(ticket.id)}, headers=self.users.headers(buyer)
        )
        assert created.status_code == 201, created.text
        order_id = UUID(created.json()["id"])
        paid = PaymentCreated(id=uuid4(), order_id=order_id, stripe_id="pi_test")
        await self.tickets.bus.publish(Envelope.of(paid))

        async def complete() -> dict[str, Any] | None:
            response = await self.client.get(
                f"/api/orders/{order_id}", headers=self.users.headers(buyer)
            )
            order: dict[str, Any] = response.json()
            return order if order["status"] == "complete" else None

        return await wait_until(complete)


@pytest.fixture
def purchases(client: httpx.AsyncClient, tickets: Tickets, users: Users) -> Purchases:
    return Purchases(client, tickets, users)
