"""Fixtures: tickets served over real HTTP on a fresh, migrated PostgreSQL database and
a fresh NATS namespace (the shared harness, ``ticketing_common.testing.service``), and
clients signed in as a seller and as another user."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import httpx
import pytest

from ticketing_common.db import Database
from ticketing_common.events.contracts import (
    CancelReason,
    Envelope,
    OrderCancelled,
    OrderCompleted,
    OrderCreated,
    OrderStatus,
    PricedTicketRef,
    TicketRef,
)
from ticketing_common.events.listener import RetryLater
from ticketing_common.spec import ServiceSpec
from ticketing_common.testing import EventsOf, ServedApp, signed_in_cookie
from ticketing_tickets.app import SPEC
from ticketing_tickets.listeners import on_order_cancelled, on_order_completed, on_order_created
from ticketing_tickets.settings import Settings

# What the test modules import from here.
__all__ = [
    "EventsOf",
    "NewTicket",
    "OrderEvent",
    "cancelled",
    "completed",
    "created",
    "deliver",
    "price",
]

NewTicket = Callable[..., Awaitable[dict[str, object]]]


@pytest.fixture(scope="session")
def service_spec() -> ServiceSpec[Settings]:
    return SPEC


@pytest.fixture
def seller_id() -> UUID:
    return uuid4()


@pytest.fixture
async def seller(
    served: ServedApp, settings: Settings, seller_id: UUID
) -> AsyncIterator[httpx.AsyncClient]:
    """A client signed in as the seller."""
    async with served.client(cookies=signed_in_cookie(settings, user_id=seller_id)) as client:
        yield client


@pytest.fixture
async def stranger(served: ServedApp, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client signed in as another user."""
    async with served.client(cookies=signed_in_cookie(settings)) as client:
        yield client


@pytest.fixture
def new_ticket(seller: httpx.AsyncClient) -> NewTicket:
    """Create a ticket as the seller through the API; returns its JSON."""

    async def create(title: str = "Concert", price: float | str = 20.5) -> dict[str, object]:
        response = await seller.post("/api/tickets", json={"title": title, "price": price})
        assert response.status_code == 201, response.text
        body: dict[str, object] = response.json()
        return body

    return create


def price(value: object) -> Decimal:
    return Decimal(str(value))


OrderEvent = Envelope[OrderCreated] | Envelope[OrderCancelled] | Envelope[OrderCompleted]


def created(
    ticket_id: UUID,
    quantity: int = 1,
    *,
    price: str = "20.50",
    general_admission: bool | None = None,
) -> Envelope[OrderCreated]:
    """A new order (version 0) of the ticket: a seat, or ``quantity`` units. Without
    ``general_admission`` it is an event as published before orders said which: tickets
    looks it up. Its cancel and completion say what it says."""
    return Envelope.of(
        OrderCreated(
            id=uuid4(),
            version=0,
            status=OrderStatus.CREATED,
            user_id=uuid4(),
            expires_at=datetime.now(UTC) + timedelta(minutes=15),
            ticket=PricedTicketRef(
                id=ticket_id, price=Decimal(price), general_admission=general_admission
            ),
            quantity=quantity,
        )
    )


def cancelled(
    order: Envelope[OrderCreated], reason: CancelReason = CancelReason.CANCELLED
) -> Envelope[OrderCancelled]:
    """The order's cancel: its next version, its last."""
    data = order.data
    return Envelope.of(
        OrderCancelled(
            id=data.id,
            version=1,
            ticket=TicketRef(id=data.ticket.id, general_admission=data.ticket.general_admission),
            reason=reason,
            quantity=data.quantity,
        )
    )


def completed(order: Envelope[OrderCreated]) -> Envelope[OrderCompleted]:
    """Paid: the order's current version (completion does not bump it)."""
    data = order.data
    return Envelope.of(
        OrderCompleted(
            id=data.id,
            version=data.version,
            user_id=data.user_id,
            ticket=data.ticket,
            quantity=data.quantity,
        )
    )


async def deliver(db: Database, event: OrderEvent) -> None:
    """One delivery, as ``transactional`` runs it: commit, or roll back on raise."""
    async with db.transaction() as session:
        match event.data:
            case OrderCancelled():
                await on_order_cancelled(Envelope.of(event.data, event_id=event.id), session)
            case OrderCreated():
                await on_order_created(Envelope.of(event.data, event_id=event.id), session)
            case OrderCompleted():
                await on_order_completed(Envelope.of(event.data, event_id=event.id), session)


async def deliver_shuffled(db: Database, events: list[OrderEvent], *, connections: int) -> None:
    """Deliver every event, all at once over ``connections`` transactions, each until it
    is applied: an event that raises ``RetryLater`` is delivered again later, as the
    listener would. Bounded, as the listener's waits are: a wait that would never end
    (a lock nobody frees) fails the test instead."""
    gate = asyncio.Semaphore(connections)

    async def until_applied(event: OrderEvent) -> None:
        for _ in range(2000):
            async with gate:
                try:
                    await deliver(db, event)
                    return
                except RetryLater:
                    pass  # redelivered later
            await asyncio.sleep(0)
        pytest.fail(f"{event.type} of order {event.data.id} waited for ever")

    await asyncio.gather(*(until_applied(event) for event in events))
