"""The notifications service: ``uvicorn --factory ticketing_notifications.app:create_app``.

No HTTP API and no gateway prefix (only ``/healthz``, ``/readyz`` and ``/metrics`` on
its own port): it follows users', tickets' and orders' events into its replicas, and
mails buyers and sellers what happened to their orders (``service.py``), through the
SMTP server of its settings.
"""

from __future__ import annotations

from ticketing_common.events.contracts import (
    OrderCancelled,
    OrderCompleted,
    OrderCreated,
    P,
    PaymentDeclined,
    PaymentRefunded,
    TicketCreated,
    TicketUpdated,
    TicketWithdrawn,
    UserCreated,
)
from ticketing_common.events.listener import Handler, Listener, transactional
from ticketing_common.events.replica import replicating
from ticketing_common.spec import Parts, ServiceContext, ServiceSpec
from ticketing_notifications import service
from ticketing_notifications.listeners import (
    Plan,
    mailing,
    on_user_created,
    order_created,
    ticket_created,
    ticket_updated,
    ticket_withdrawn,
)
from ticketing_notifications.mailer import Mailer
from ticketing_notifications.mails import Composer
from ticketing_notifications.models import Order, Ticket
from ticketing_notifications.settings import Settings


def parts(context: ServiceContext[Settings]) -> Parts:
    database = context.database
    mailer = Mailer(context.settings)
    composer = Composer(context.settings)
    counts = service.MailMetrics(context.metrics)

    def mails(plan: Plan[P]) -> Handler[P]:
        return mailing(database, mailer, composer, counts, plan)

    return Parts(
        provides=[mailer, composer, counts],
        listeners=[
            Listener(UserCreated, transactional(database, on_user_created)),
            Listener(TicketCreated, replicating(database, Ticket, ticket_created)),
            Listener(TicketUpdated, replicating(database, Ticket, ticket_updated)),
            Listener(TicketWithdrawn, replicating(database, Ticket, ticket_withdrawn)),
            Listener(OrderCreated, replicating(database, Order, order_created)),
            Listener(OrderCompleted, mails(service.mails_of_completed_order)),
            Listener(OrderCancelled, mails(service.mails_of_cancelled_order)),
            Listener(PaymentDeclined, mails(service.mails_of_declined_payment)),
            Listener(PaymentRefunded, mails(service.mails_of_refunded_payment)),
        ],
    )


SPEC = ServiceSpec(
    name="notifications",
    package="ticketing_notifications",
    title="Ticketing notifications",
    settings=Settings,
    parts=parts,
    consumes=(
        UserCreated,
        TicketCreated,
        TicketUpdated,
        TicketWithdrawn,
        OrderCreated,
        OrderCompleted,
        OrderCancelled,
        PaymentDeclined,
        PaymentRefunded,
    ),
)
create_app = SPEC.create_app
