"""What payments hears: order:created and order:cancelled keep its order replica.

Each change is applied in the owner's version order through ``apply_versioned``:
a redelivered or older event is acked and ignored, and an event that arrives
before its predecessor (order:cancelled before order:created: a gap) is not
acked, so it comes back after it. A cancelled order's payment is settled in the
same transaction (SPEC §4 flow 3): a charge is refunded, whether it was recorded
or is only known to Stripe (an attempt left pending by a crash), and an intent
that charged nothing is voided so it never can.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing_common.events.contracts import Envelope, OrderCancelled, OrderCreated, OrderStatus
from ticketing_common.events.listener import SessionHandler
from ticketing_common.events.replica import Change, apply_versioned
from ticketing_common.money import to_cents
from ticketing_payments import service
from ticketing_payments.models import OrderReplica
from ticketing_payments.provider import PaymentProvider


def order_created(event: Envelope[OrderCreated]) -> Change:
    """What order:created makes of the order replica (``replicating`` applies it)."""
    order = event.data
    return Change(
        id=order.id,
        version=order.version,
        values={
            "user_id": order.user_id,
            "status": order.status,
            # The ticket's unit price as the order was made, and its units: the buyer
            # pays their product.
            "price_cents": to_cents(order.ticket.price),
            "quantity": order.quantity,
            "expires_at": order.expires_at,
        },
    )


def on_order_cancelled(provider: PaymentProvider) -> SessionHandler[OrderCancelled]:
    async def handle(event: Envelope[OrderCancelled], session: AsyncSession) -> None:
        order = event.data
        await apply_versioned(
            session,
            OrderReplica,
            id=order.id,
            version=order.version,
            values={"status": OrderStatus.CANCELLED},
        )
        # Also on a duplicate: settling is idempotent, and finds nothing to do when the
        # first delivery's transaction already settled. If Stripe fails, the
        # cancellation still commits and the reconciler settles the payment later.
        await service.settle_cancelled_order(session, provider, order.id)

    return handle
