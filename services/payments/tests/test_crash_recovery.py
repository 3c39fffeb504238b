"""Payments killed between the charge and its record never keep money without a ticket.

The payments app runs as a real process (uvicorn, as ``ticketing up`` runs it) with
``FAULT_POINTS=payments.after_charge=1.0``: the card is charged at the Stripe
sandbox, then the process dies by SIGKILL before it records anything. Restarted
without the fault, on the same database, the buyer ends with the ticket
(payment:created, so orders completes the order) or, when the order was cancelled
meanwhile (it expired), with the charge refunded (payment:refunded) — every round.
Killed after recording the attempt but before the charge, the buyer pays once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from uuid import UUID, uuid4

import httpx
import pytest
import stripe

from ticketing_common.db import Database
from ticketing_common.embedded import HOST, free_port
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import (
    Envelope,
    OrderCreated,
    OrderStatus,
    PaymentCreated,
    PaymentRefunded,
)
from ticketing_common.testing import published_so_far, wait_until
from ticketing_payments.models import Payment, PaymentStatus
from ticketing_stripe_sandbox.testing import StripeApi, stripe_client

from .conftest import Orders, Users, charges_of, order_cancelled, payment_of, replica_order

ROUNDS = 3
START_TIMEOUT_SECONDS = 60.0


class PaymentsProcess:
    """``uvicorn --factory ticketing_payments.app:create_app`` in a child process."""

    def __init__(self, process: asyncio.subprocess.Process, url: str) -> None:
        self.process = process
        self.url = url

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30)


@pytest.fixture
def environment(
    migrated_url: str, nats_url: str, redis_url: str, namespace: str, stripe_api: StripeApi
) -> dict[str, str]:
    account = stripe_api.with_key(f"sk_test_crash{uuid4().hex[:12]}")  # an empty account
    return {
        **os.environ,
        "DATABASE_URL": migrated_url,
        "NATS_URL": nats_url,
        "NATS_NAMESPACE": namespace,
        "REDIS_URL": redis_url,
        "ENVIRONMENT": "test",
        "SERVICE_NAME": "payments",
        "STRIPE_SECRET_KEY": account.secret_key,
        "STRIPE_API_BASE": account.api_base,
        # No SDK retries: an attempt older than the 2 s timeout is no longer in flight.
        "STRIPE_MAX_NETWORK_RETRIES": "0",
        "STRIPE_TIMEOUT_SECONDS": "2",
        "REFUND_SWEEP_SECONDS": "0.2",
        "FAULT_POINTS": "",
        "LOG_LEVEL": "WARNING",
    }


@asynccontextmanager
async def running(env: dict[str, str], log: Path) -> AsyncIterator[PaymentsProcess]:
    """Payments started, ready (``/readyz``), and stopped (if still alive) afterwards."""
    port = free_port()
    with log.open("ab") as output:
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "uvicorn", "--factory", "ticketing_payments.app:create_app"),
            *("--host", HOST, "--port", str(port), "--no-access-log"),
            env=env,
            stdout=output,
            stderr=output,
        )
    served = PaymentsProcess(process, f"http://{HOST}:{port}")
    try:
        async with served.client() as client:

            async def ready() -> bool:
                if process.returncode is not None:
                    raise AssertionError(f"payments exited with {process.returncode}; see {log}")
                try:
                    return (await client.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_until(ready, timeout=START_TIMEOUT_SECONDS, interval=0.1)
        yield served
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), timeout=30)


async def _pay(client: httpx.AsyncClient, users: Users, order_id: UUID, buyer: UUID) -> int:
    response = await client.post(
        "/api/payments",
        json={"token": "tok_visa", "orderId": str(order_id)},
        headers=users.headers(buyer),
    )
    return response.status_code


async def _charged_then_killed(
    env: dict[str, str], log: Path, bus: EventBus, db: Database, users: Users, price: str
) -> tuple[OrderCreated, Payment]:
    """An order paid with the fault armed, and the attempt it left pending."""
    async with running({**env, "FAULT_POINTS": "payments.after_charge=1.0"}, log) as payments:
        order = await Orders(bus, db).placed(price=price)
        async with payments.client() as client:
            with pytest.raises(httpx.TransportError):  # the process died mid-request
                await _pay(client, users, order.id, order.user_id)
        assert await payments.process.wait() == -signal.SIGKILL
    attempt = await payment_of(db, order.id)
    assert attempt is not None
    assert attempt.status == PaymentStatus.PENDING  # recorded before the charge, not after
    return order, attempt


async def _succeeded_charge(sdk: stripe.StripeClient, intent_id: str) -> stripe.Charge:
    [charge] = await charges_of(sdk, intent_id)
    assert (charge.status, charge.refunded) == ("succeeded", False)
    return charge


async def _cancelled(db: Database, order_id: UUID) -> bool:
    copy = await replica_order(db, order_id)
    return copy is not None and copy.status == OrderStatus.CANCELLED


async def _settled(db: Database, order_id: UUID, status: PaymentStatus) -> Payment:
    async def reached() -> Payment | None:
        payment = await payment_of(db, order_id)
        return payment if payment is not None and payment.status == status else None

    return await wait_until(reached, timeout=30)


async def test_killed_after_the_charge_the_buyer_ends_with_the_ticket(
    environment: dict[str, str],
    tmp_path: Path,
    bus: EventBus,
    db: Database,
    users: Users,
    stripe_api: StripeApi,
) -> None:
    sdk = stripe_client(stripe_api.with_key(environment["STRIPE_SECRET_KEY"]))
    log = tmp_path / "payments.log"
    for round_ in range(ROUNDS):
        order, attempt = await _charged_then_killed(environment, log, bus, db, users, price="20.50")
        order_id, buyer = order.id, order.user_id
        await _succeeded_charge(sdk, attempt.stripe_id)

        async with running(environment, log) as payments:
            if round_ % 2:
                # The buyer retries at once: Stripe is asked before anything is decided.
                async with payments.client() as client:
                    status = await _pay(client, users, order_id, buyer)
                assert status in {201, 409}  # recorded by this retry, or by the reconciler
            payment = await _settled(db, order_id, PaymentStatus.SUCCEEDED)

        assert payment.stripe_id == attempt.stripe_id
        created = [e.data for e in await published_so_far(bus, PaymentCreated)]
        assert [e for e in created if e.order_id == order_id] == [
            PaymentCreated(id=payment.id, order_id=order_id, stripe_id=payment.stripe_id)
        ]
        await _succeeded_charge(sdk, attempt.stripe_id)  # one charge, kept: the ticket is paid
    assert await published_so_far(bus, PaymentRefunded) == []


async def test_killed_after_the_charge_of_an_order_that_then_expires_the_buyer_is_refunded(
    environment: dict[str, str],
    tmp_path: Path,
    bus: EventBus,
    db: Database,
    users: Users,
    stripe_api: StripeApi,
) -> None:
    sdk = stripe_client(stripe_api.with_key(environment["STRIPE_SECRET_KEY"]))
    log = tmp_path / "payments.log"
    for _ in range(ROUNDS):
        order, attempt = await _charged_then_killed(environment, log, bus, db, users, price="33.00")
        order_id, buyer = order.id, order.user_id
        charge = await _succeeded_charge(sdk, attempt.stripe_id)
        # While payments is down the order expires: orders cancels it.
        await bus.publish(Envelope.of(order_cancelled(order)))

        async with running(environment, log) as payments:
            await wait_until(partial(_cancelled, db, order_id), timeout=30)
            payment = await _settled(db, order_id, PaymentStatus.REFUNDED)
            # The buyer's retry after the expiry is told what became of the money.
            async with payments.client() as client:
                response = await client.post(
                    "/api/payments",
                    json={"token": "tok_visa", "orderId": str(order_id)},
                    headers=users.headers(buyer),
                )
            assert response.status_code == 400
            assert response.json() == {
                "errors": [{"message": "Order has been cancelled; your payment has been refunded"}]
            }

        [refunded] = await charges_of(sdk, attempt.stripe_id)
        assert (refunded.refunded, refunded.amount_refunded) == (True, charge.amount)
        refunds = (await sdk.v1.refunds.list_async({"payment_intent": attempt.stripe_id})).data
        assert [(r.id, r.metadata and r.metadata.to_dict()) for r in refunds] == [
            (payment.refund_id, {"order_id": str(order_id)})
        ]
        events = [e.data for e in await published_so_far(bus, PaymentRefunded)]
        assert [e for e in events if e.order_id == order_id] == [
            PaymentRefunded(id=payment.id, order_id=order_id, refund_id=payment.refund_id)
        ]


async def test_killed_after_recording_the_attempt_before_the_charge_the_buyer_pays_once(
    environment: dict[str, str],
    tmp_path: Path,
    bus: EventBus,
    db: Database,
    users: Users,
    stripe_api: StripeApi,
) -> None:
    """Killed with the attempt recorded and the card untouched: the attempt is failed
    once no request can still be confirming it, and the buyer's next payment charges
    the same intent, once."""
    sdk = stripe_client(stripe_api.with_key(environment["STRIPE_SECRET_KEY"]))
    log = tmp_path / "payments.log"
    async with running({**environment, "FAULT_POINTS": "payments.before_confirm"}, log) as dying:
        order = await Orders(bus, db).placed(price="9.99")
        async with dying.client() as client:
            with pytest.raises(httpx.TransportError):
                await _pay(client, users, order.id, order.user_id)
        assert await dying.process.wait() == -signal.SIGKILL
    attempt = await payment_of(db, order.id)
    assert attempt is not None
    assert attempt.status == PaymentStatus.PENDING
    assert await charges_of(sdk, attempt.stripe_id) == []

    async with running(environment, log) as payments:
        await _settled(db, order.id, PaymentStatus.FAILED)  # by the reconciler
        async with payments.client() as client:
            assert await _pay(client, users, order.id, order.user_id) == 201
    payment = await _settled(db, order.id, PaymentStatus.SUCCEEDED)
    assert payment.stripe_id == attempt.stripe_id
    await _succeeded_charge(sdk, attempt.stripe_id)
    created = [e.data for e in await published_so_far(bus, PaymentCreated)]
    assert [e.order_id for e in created] == [order.id]


async def test_a_charged_buyers_retry_after_the_crash_is_answered_even_with_no_attempts_left(
    environment: dict[str, str],
    tmp_path: Path,
    bus: EventBus,
    db: Database,
    users: Users,
) -> None:
    """The payment limits allow one attempt per order and per user, which the crashed
    request used. The buyer's retries are answered from the charge it made (201, or
    409 once recorded), never 429: a buyer who was charged always learns it."""
    limited = {**environment, "PAYMENT_RATE_PER_ORDER": "1/hour", "PAYMENT_RATE_PER_USER": "1/hour"}
    log = tmp_path / "payments.log"
    order, attempt = await _charged_then_killed(limited, log, bus, db, users, price="21.00")

    async with running(limited, log) as payments, payments.client() as client:
        first = await _pay(client, users, order.id, order.user_id)
        await _settled(db, order.id, PaymentStatus.SUCCEEDED)
        again = await _pay(client, users, order.id, order.user_id)

    assert first in {201, 409}  # recorded by this retry, or by the reconciler first
    assert again == 409
    payment = await payment_of(db, order.id)
    assert payment is not None
    assert payment.stripe_id == attempt.stripe_id
