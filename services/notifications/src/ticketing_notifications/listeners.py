"""What notifications hears: the replicas' events, and the events that cause mail.

user:created, ticket:* and order:created keep the replicas a mail needs (in their
owner's version order: each event's change, applied by ``replicating``).
order:completed, order:cancelled, payment:declined and payment:refunded cause mail:
the handler reads what the mails need in one transaction, then sends each mail
exactly once (``service.send_once``). An SMTP server or a database that cannot be
reached is an outage: the event waits (``RetryLater``) instead of being
dead-lettered after a few failures.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing_common.db import Database
from ticketing_common.events.contracts import (
    Envelope,
    OrderCreated,
    P,
    TicketCreated,
    TicketUpdated,
    TicketWithdrawn,
    UserCreated,
)
from ticketing_common.events.listener import Handler, RetryLater, database_unavailable
from ticketing_common.events.replica import Change
from ticketing_common.money import to_cents
from ticketing_notifications import repository, service
from ticketing_notifications.mailer import Mailer, is_outage
from ticketing_notifications.mails import Composer, Mail
from ticketing_notifications.settings import Settings

Plan = Callable[[AsyncSession, Settings, Envelope[P]], Awaitable[list[Mail]]]


async def on_user_created(event: Envelope[UserCreated], session: AsyncSession) -> None:
    await repository.add_user(session, user_id=event.data.id, email=event.data.email)


def ticket_created(event: Envelope[TicketCreated]) -> Change:
    ticket = event.data
    return Change(
        id=ticket.id,
        version=ticket.version,
        values={
            "title": ticket.title,
            "price_cents": to_cents(ticket.price),
            "user_id": ticket.user_id,
        },
    )


def ticket_updated(event: Envelope[TicketUpdated]) -> Change:
    ticket = event.data
    return Change(
        id=ticket.id,
        version=ticket.version,
        values={"title": ticket.title, "price_cents": to_cents(ticket.price)},
    )


def ticket_withdrawn(event: Envelope[TicketWithdrawn]) -> Change:
    # Applied in order like any version, so the ticket:updated events after it line up.
    return Change(id=event.data.id, version=event.data.version, values={"withdrawn": True})


def order_created(event: Envelope[OrderCreated]) -> Change:
    order = event.data
    return Change(
        id=order.id,
        version=order.version,
        values={
            "user_id": order.user_id,
            "ticket_id": order.ticket.id,
            # The price the buyer agreed to (a later edit of the ticket does not change it).
            "price_cents": to_cents(order.ticket.price),
            "quantity": order.quantity,
        },
    )


def mailing(
    database: Database,
    mailer: Mailer,
    composer: Composer,
    counts: service.MailMetrics,
    plan: Plan[P],
) -> Handler[P]:
    """A handler that sends the mails ``plan`` makes of an event, each exactly once."""
    settings = composer.settings

    async def handle(event: Envelope[P]) -> None:
        try:
            async with database.transaction() as session:
                mails = await plan(session, settings, event)
            for mail in mails:
                message = composer.message(mail, event_id=event.id)
                await service.send_once(
                    database, mailer, counts, event_id=event.id, mail=mail, message=message
                )
        except RetryLater:
            raise
        except Exception as error:
            if database_unavailable(error) or is_outage(error):
                raise RetryLater(f"cannot send yet: {error!r}") from error
            raise

    return handle
