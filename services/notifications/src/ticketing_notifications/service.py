"""Notifications' rules: which mails an event causes, to whom, saying what; and sending
each exactly once.

An event whose mail needs a record not replicated yet (the buyer's user:created, the
ticket, the order: events of other streams may arrive later) is retried, never
dropped (``NotReplicatedYet``). Each mail is then sent in a transaction of its own
that first claims its ``sent_mail`` row: a redelivered event finds the row and
sends nothing, and a send that fails rolls the claim back, so the event's retry
sends it. Mails of one event are claimed one by one, so a failure of the second
never makes the first go out twice.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from email.message import EmailMessage
from uuid import UUID

from prometheus_client import Counter
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing_common.admission import AdmissionCodes
from ticketing_common.db import Database
from ticketing_common.eticket import ETicket, pdf, qr_png
from ticketing_common.events.contracts import (
    CancelReason,
    Envelope,
    OrderCancelled,
    OrderCompleted,
    PaymentDeclined,
    PaymentRefunded,
)
from ticketing_common.events.listener import RetryLater
from ticketing_common.metrics import Metrics
from ticketing_common.money import from_cents
from ticketing_notifications import repository
from ticketing_notifications.mailer import Mailer
from ticketing_notifications.mails import Attachment, InlineImage, Mail, MailKind, one_line
from ticketing_notifications.models import Order, Ticket
from ticketing_notifications.settings import Settings

logger = logging.getLogger("ticketing.notifications")

QR_CID = "eticket-qr@ticketing"


class MailMetrics:
    """``ticketing_notifications_mails``: each mail an event called for, by kind and by
    what became of it (``sent``, or ``already_sent``: a redelivery found its row)."""

    def __init__(self, metrics: Metrics) -> None:
        self.mails = Counter(
            "ticketing_notifications_mails",
            "Mails events called for, by kind and outcome (sent, already_sent).",
            ["kind", "outcome"],
            registry=metrics.registry,
        )

    def count(self, kind: MailKind, outcome: str) -> None:
        self.mails.labels(kind=kind.value, outcome=outcome).inc()


class NotReplicatedYet(RetryLater):
    """A mail needs a record whose event has not arrived yet: retry the event later."""

    def __init__(self, what: str, record_id: UUID) -> None:
        super().__init__(f"{what} {record_id} is not replicated yet", delay=0.25, max_delay=5)


def money(amount: Decimal) -> str:
    return f"${amount:,.2f}"


def amounts(price: Decimal, quantity: int) -> dict[str, object]:
    """What a mail shows of what was paid: the unit price, the units and their total."""
    return {"price": money(price), "quantity": quantity, "total": money(price * quantity)}


async def _email(session: AsyncSession, user_id: UUID) -> str:
    email = await repository.email_of(session, user_id)
    if email is None:
        raise NotReplicatedYet("user", user_id)
    return email


async def _ticket(session: AsyncSession, ticket_id: UUID) -> Ticket:
    ticket = await repository.ticket(session, ticket_id)
    if ticket is None:
        raise NotReplicatedYet("ticket", ticket_id)
    return ticket


async def _order(session: AsyncSession, order_id: UUID) -> Order:
    order = await repository.order(session, order_id)
    if order is None:
        raise NotReplicatedYet("order", order_id)
    return order


async def mails_of_completed_order(
    session: AsyncSession, settings: Settings, event: Envelope[OrderCompleted]
) -> list[Mail]:
    """The buyer's confirmation with the e-ticket, and the seller's "you sold"."""
    completed = event.data
    ticket = await _ticket(session, completed.ticket.id)
    buyer = await _email(session, completed.user_id)
    seller = await _email(session, ticket.user_id)
    # The same code orders issued: derived from the shared key, never stored here.
    code = AdmissionCodes.of_secret(settings.JWT_KEY).issue(
        order_id=completed.id, ticket_id=ticket.id
    )
    price = completed.ticket.price
    eticket = ETicket(
        title=ticket.title,
        price=price,
        order_id=completed.id,
        ticket_id=ticket.id,
        code=code,
        issued_at=event.time,
        quantity=completed.quantity,
    )
    qr = qr_png(code)  # once, for the inline image and the PDF
    title = one_line(ticket.title)
    order_url = f"{settings.site_url}/orders/{completed.id}"
    return [
        Mail(
            kind=MailKind.ORDER_CONFIRMATION,
            recipient=buyer,
            subject=f"Your ticket for {title}",
            context={
                "title": ticket.title,
                **amounts(price, completed.quantity),
                "order_id": completed.id,
                "code": code,
                "order_url": order_url,
                "qr_cid": QR_CID,
            },
            inline=(InlineImage(cid=QR_CID, png=qr),),
            attachments=(
                Attachment(
                    filename=f"ticket-{completed.id}.pdf",
                    content=pdf(eticket, qr=qr),
                    maintype="application",
                    subtype="pdf",
                ),
            ),
        ),
        Mail(
            kind=MailKind.TICKET_SOLD,
            recipient=seller,
            subject=f"You sold {title}",
            context={
                "title": ticket.title,
                **amounts(price, completed.quantity),
                "ticket_url": f"{settings.site_url}/tickets/{ticket.id}",
            },
        ),
    ]


# What the buyer is told of a cancellation, by its reason. A buyer who cancelled knows;
# a refund is told by payment:refunded, once the money is on its way.
CANCELLATION_MAILS = {
    CancelReason.EXPIRED: MailKind.ORDER_EXPIRED,
    CancelReason.WITHDRAWN: MailKind.ORDER_WITHDRAWN,
}


async def mails_of_cancelled_order(
    session: AsyncSession, settings: Settings, event: Envelope[OrderCancelled]
) -> list[Mail]:
    cancelled = event.data
    kind = CANCELLATION_MAILS.get(cancelled.reason)
    if kind is None:
        return []
    order = await _order(session, cancelled.id)
    ticket = await _ticket(session, order.ticket_id)
    buyer = await _email(session, order.user_id)
    title = one_line(ticket.title)
    subject = (
        f"Your order for {title} expired"
        if kind is MailKind.ORDER_EXPIRED
        else f"The seller withdrew {title}"
    )
    return [
        Mail(
            kind=kind,
            recipient=buyer,
            subject=subject,
            context={
                "title": ticket.title,
                **amounts(from_cents(order.price_cents), order.quantity),
                "order_url": f"{settings.site_url}/orders/{order.id}",
                "ticket_url": f"{settings.site_url}/tickets/{ticket.id}",
            },
        )
    ]


async def mails_of_declined_payment(
    session: AsyncSession, settings: Settings, event: Envelope[PaymentDeclined]
) -> list[Mail]:
    declined = event.data
    order = await _order(session, declined.order_id)
    ticket = await _ticket(session, order.ticket_id)
    buyer = await _email(session, declined.user_id)
    return [
        Mail(
            kind=MailKind.PAYMENT_DECLINED,
            recipient=buyer,
            subject=f"Payment declined: {one_line(ticket.title)}",
            context={
                "title": ticket.title,
                "message": declined.message,
                "order_url": f"{settings.site_url}/orders/{order.id}",
            },
        )
    ]


async def mails_of_refunded_payment(
    session: AsyncSession, settings: Settings, event: Envelope[PaymentRefunded]
) -> list[Mail]:
    refunded = event.data
    order = await _order(session, refunded.order_id)
    ticket = await _ticket(session, order.ticket_id)
    buyer = await _email(session, order.user_id)
    return [
        Mail(
            kind=MailKind.REFUND_ISSUED,
            recipient=buyer,
            subject=f"Refund issued: {one_line(ticket.title)}",
            context={
                "title": ticket.title,
                **amounts(from_cents(order.price_cents), order.quantity),
                "order_url": f"{settings.site_url}/orders/{order.id}",
            },
        )
    ]


async def send_once(
    database: Database,
    mailer: Mailer,
    counts: MailMetrics,
    *,
    event_id: UUID,
    mail: Mail,
    message: EmailMessage,
) -> bool:
    """Send the event's mail of this kind unless it was sent; True when this call sent it.

    The ``sent_mail`` row is inserted first and committed only after the SMTP server
    accepted the message; a failed send rolls it back and raises, so the event is
    retried. The one window left: the process dies (or the commit fails) after the
    server accepted and before the commit, and the retry sends a second copy, with the
    same Message-ID (docs/operations.md, "Mail").
    """
    async with database.transaction() as session:
        claimed = await repository.claim_mail(
            session,
            event_id=event_id,
            kind=mail.kind.value,
            recipient=mail.recipient,
            message_id=str(message["Message-ID"]),
        )
        if not claimed:
            counts.count(mail.kind, "already_sent")
            logger.info(
                "mail already sent",
                extra={"event_id": str(event_id), "kind": mail.kind.value},
            )
            return False
        await mailer.send(message)
    counts.count(mail.kind, "sent")
    logger.info(
        "mail sent",
        extra={
            "event_id": str(event_id),
            "kind": mail.kind.value,
            "message_id": message["Message-ID"],
        },
    )
    return True
