"""Fixtures: tickets served over real HTTP on a fresh, migrated PostgreSQL database and
a fresh NATS namespace (the shared harness, ``ticketing_common.testing.service``), and
clients signed in as a seller and as another user."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from uuid import UUID, uuid4

import httpx
import pytest

from ticketing_common.spec import ServiceSpec
from ticketing_common.testing import EventsOf, ServedApp, signed_in_cookie
from ticketing_tickets.app import SPEC
from ticketing_tickets.settings import Settings

# What the test modules import from here.
__all__ = ["EventsOf", "NewTicket", "price"]

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
