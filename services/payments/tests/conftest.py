"""Fixtures: payments served over real HTTP on a fresh, migrated PostgreSQL database and a
fresh NATS namespace (the shared harness, ``ticketing_common.testing.service``), talking
through the real Stripe SDK to the ``stripe_api`` fixture (the Stripe sandbox, or Stripe
itself when ``STRIPE_SECRET_KEY`` is set). Orders reach its replica through real order
events on the bus."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import httpx
import pytest
import stripe
from sqlalchemy import func, select

from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import (
    CancelReason,
    Envelope,
    OrderCancelled,
    OrderCreated,
    OrderStatus,
    PricedTicketRef,
    TicketRef,
)
from ticketing_common.events.outbox import outbox_table
from ticketing_common.spec import ServiceSpec
from ticketing_common.testing import Serve, ServedApp, Users, wait_until
from ticketing_payments.app import SPEC
from ticketing_payments.models import OrderReplica, Payment, PaymentStatus
from ticketing_payments.settings import Settings
from ticketing_stripe_sandbox.testing import StripeApi, stripe_client

# What the test modules import from here.
__all__ = [
    "Orders",
    "ServePayments",
    "Users",
    "charges_of",
    "order_cancelled",
    "order_created",
    "outbox_drained",
    "pay",
    "payment_count",
    "payment_of",
    "replica_order",
]

ServePayments = Serve


@pytest.fixture(scope="session")
def service_spec() -> ServiceSpec[Settings]:
    return SPEC


@pytest.fixture
def serve_payments(serve: Serve) -> ServePayments:
    return serve


@pytest.fixture
def payments(served: ServedApp) -> ServedApp:
    return served


@pytest.fixture(name="stripe_client")
def stripe_sdk(stripe_api: StripeApi) -> stripe.StripeClient:
    """The real SDK, to look at what the provider holds (charges, refunds)."""
    return stripe_client(stripe_api)


async def charges_of(client: stripe.StripeClient, intent_id: str) -> list[stripe.Charge]:
    """Every charge the provider made for one PaymentIntent."""
    listed = await client.v1.charges.list_async({"payment_intent": intent_id, "limit": 100})
    return list(listed.data)


async def replica_order(db: Database, order_id: UUID) -> OrderReplica | None:
    async with db.transaction() as session:
        return await session.scalar(select(OrderReplica).where(OrderReplica.id == order_id))


async def payment_of(db: Database, order_id: UUID) -> Payment | None:
    async with db.transaction() as session:
        return await session.scalar(select(Payment).where(Payment.order_id == order_id))


async def payment_count(db: Database) -> int:
    """How many payments charged a card (attempts that charged nothing are not counted)."""
    charged = [PaymentStatus.SUCCEEDED.value, PaymentStatus.REFUNDED.value]
    async with db.transaction() as session:
        return (
            await session.scalar(
                select(func.count()).select_from(Payment).where(Payment.status.in_(charged))
            )
            or 0
        )


async def outbox_drained(db: Database) -> bool:
    """True once the relay has published every recorded event."""
    async with db.transaction() as session:
        return (await session.scalar(select(func.count()).select_from(outbox_table))) == 0


def order_created(
    *,
    buyer: UUID,
    price: str = "20.50",
    expires_in: timedelta = timedelta(minutes=15),
    quantity: int = 1,
) -> OrderCreated:
    return OrderCreated(
        id=uuid4(),
        version=0,
        status=OrderStatus.CREATED,
        user_id=buyer,
        expires_at=datetime.now(UTC) + expires_in,
        ticket=PricedTicketRef(id=uuid4(), price=Decimal(price)),
        quantity=quantity,
    )


def order_cancelled(
    order: OrderCreated, reason: CancelReason = CancelReason.CANCELLED
) -> OrderCancelled:
    return OrderCancelled(
        id=order.id, version=1, ticket=TicketRef(id=order.ticket.id), reason=reason
    )


@dataclass
class Orders:
    """Places and cancels orders the way the orders service does: by publishing events."""

    bus: EventBus
    db: Database

    async def placed(
        self,
        *,
        buyer: UUID | None = None,
        price: str = "20.50",
        expires_in: timedelta = timedelta(minutes=15),
        quantity: int = 1,
    ) -> OrderCreated:
        order = order_created(
            buyer=buyer or uuid4(), price=price, expires_in=expires_in, quantity=quantity
        )
        await self.bus.publish(Envelope.of(order))

        async def replicated() -> bool:
            return await replica_order(self.db, order.id) is not None

        await wait_until(replicated)
        return order

    async def cancel(
        self, order: OrderCreated, reason: CancelReason = CancelReason.CANCELLED
    ) -> OrderCancelled:
        """Publish order:cancelled and wait until the replica shows it."""
        cancelled = order_cancelled(order, reason)
        await self.bus.publish(Envelope.of(cancelled))

        async def applied() -> bool:
            copy = await replica_order(self.db, order.id)
            return copy is not None and copy.status == OrderStatus.CANCELLED

        await wait_until(applied)
        return cancelled


@pytest.fixture
def orders(bus: EventBus, db: Database, payments: ServedApp) -> Orders:
    return Orders(bus, db)


async def pay(
    client: httpx.AsyncClient,
    users: Users,
    order: OrderCreated,
    token: str = "tok_visa",  # noqa: S107 - a test card
) -> httpx.Response:
    return await client.post(
        "/api/payments",
        json={"token": token, "orderId": str(order.id)},
        headers=users.headers(order.user_id),
    )
