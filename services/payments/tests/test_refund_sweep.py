"""A charge left on a cancelled order (its refund failed at the time) is refunded by the
payments service's periodic sweep, once."""

from __future__ import annotations

import stripe
from sqlalchemy import update

from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import OrderStatus, PaymentRefunded
from ticketing_common.testing import published, wait_until
from ticketing_payments.models import OrderReplica, Payment, PaymentStatus

from .conftest import Orders, ServePayments, Users, charges_of, pay, payment_of


async def test_charge_on_a_cancelled_order_is_refunded_by_the_sweep(
    serve_payments: ServePayments,
    bus: EventBus,
    db: Database,
    users: Users,
    stripe_client: stripe.StripeClient,
) -> None:
    async with serve_payments(REFUND_SWEEP_SECONDS=0.2) as payments:
        order = await Orders(bus, db).placed(price="12.00")
        async with payments.client() as client:
            paid = await pay(client, users, order)
        assert paid.status_code == 201, paid.text
        # What a failed refund leaves behind: the order cancelled (its event handled
        # before the charge was recorded) and the charge recorded, not refunded.
        async with db.transaction() as session:
            await session.execute(
                update(OrderReplica)
                .where(OrderReplica.id == order.id)
                .values(status=OrderStatus.CANCELLED, version=1)
            )

        async def refunded() -> Payment | None:
            payment = await payment_of(db, order.id)
            done = payment is not None and payment.status == PaymentStatus.REFUNDED
            return payment if done else None

        payment = await wait_until(refunded)
        [charge] = await charges_of(stripe_client, paid.json()["stripeId"])
        assert (charge.refunded, charge.amount_refunded) == (True, 1200)
        [event] = await published(bus, PaymentRefunded, 1)
        assert (event.data.order_id, event.data.refund_id) == (order.id, payment.refund_id)
