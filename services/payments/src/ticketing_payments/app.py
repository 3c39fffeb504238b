"""The payments service: ``uvicorn --factory ticketing_payments.app:create_app``.

Buyers pay for their orders by card under ``/api/payments``; it follows orders'
events to keep its order replica (settling the payment of a cancelled order),
reconciles with Stripe in the background, and publishes ``payment:*`` through
its outbox.
"""

from __future__ import annotations

from ticketing_common.events.contracts import (
    OrderCancelled,
    OrderCreated,
    PaymentCreated,
    PaymentDeclined,
    PaymentRefunded,
)
from ticketing_common.events.listener import Listener, transactional
from ticketing_common.events.replica import replicating
from ticketing_common.spec import Parts, ServiceContext, ServiceSpec
from ticketing_payments.listeners import on_order_cancelled, order_created
from ticketing_payments.models import OrderReplica
from ticketing_payments.provider import PaymentProvider
from ticketing_payments.routes import router
from ticketing_payments.service import PaymentMetrics, reconciler
from ticketing_payments.settings import Settings
from ticketing_payments.throttle import PaymentThrottle


def parts(context: ServiceContext[Settings]) -> Parts:
    settings, database = context.settings, context.database
    provider = PaymentProvider.from_settings(settings)
    throttle = PaymentThrottle.from_settings(settings)
    return Parts(
        provides=[provider, throttle, PaymentMetrics(context.metrics, database)],
        listeners=[
            Listener(OrderCreated, replicating(database, OrderReplica, order_created)),
            Listener(OrderCancelled, transactional(database, on_order_cancelled(provider))),
        ],
        workers=[reconciler(database, provider, settings.REFUND_SWEEP_SECONDS)],
        on_shutdown=[provider.close, throttle.close],
    )


SPEC = ServiceSpec(
    name="payments",
    package="ticketing_payments",
    title="Ticketing payments",
    settings=Settings,
    api_prefix="/api/payments",
    routers=[router],
    parts=parts,
    publishes=(PaymentCreated, PaymentRefunded, PaymentDeclined),
    consumes=(OrderCreated, OrderCancelled),
    stripe_secret=True,
)
create_app = SPEC.create_app
