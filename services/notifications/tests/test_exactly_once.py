"""Exactly one mail per event and kind: a redelivered event, or one delivered to two
replicas at once, sends nothing more; an event that needs a user, ticket or order not
replicated yet, or that the SMTP server does not take, waits and is never dropped."""

from __future__ import annotations

import asyncio

from aiosmtpd.controller import Controller
from sqlalchemy import func, select

from ticketing_common.db import Database
from ticketing_common.embedded import free_port
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import PaymentDeclined, UserCreated
from ticketing_common.testing import Serve, ServedApp, tried_and_not_acked, wait_until
from ticketing_common.testing.metrics import scraped, value
from ticketing_devstack.mailcatcher import Mailbox, MailboxHandler
from ticketing_notifications import service
from ticketing_notifications.listeners import mailing
from ticketing_notifications.mailer import Mailer
from ticketing_notifications.mails import Composer
from ticketing_notifications.models import SentMail

from .conftest import Market, handled, mails_to


async def sent_rows(db: Database) -> int:
    async with db.transaction() as session:
        return await session.scalar(select(func.count()).select_from(SentMail)) or 0


async def test_a_redelivered_event_sends_no_second_mail(
    notifications: ServedApp, market: Market, mailbox: Mailbox, bus: EventBus, db: Database
) -> None:
    seller, _ = await market.user()
    buyer, buyer_email = await market.user()
    order = await market.order(buyer, await market.ticket(seller))
    declined = await market.declined(order, "Insufficient funds.")
    await mails_to(mailbox, buyer_email)
    before = handled(notifications)

    # The same event once more, as the broker redelivers it after its duplicate window
    # (a new message id, so the broker's own de-duplication does not drop it).
    await bus.publish_raw(
        bus.subjects.of(PaymentDeclined.event_type),
        declined.to_json(),
        msg_id=f"{declined.id}-redelivered",
    )
    await wait_until(lambda: handled(notifications) > before)
    assert len(mailbox.to(buyer_email)) == 1
    assert await sent_rows(db) == 1
    async with notifications.client() as client:
        samples = await scraped(client)
    mails = "ticketing_notifications_mails_total"
    assert value(samples, mails, kind="payment-declined", outcome="sent") == 1
    assert value(samples, mails, kind="payment-declined", outcome="already_sent") == 1


async def test_concurrent_deliveries_of_one_event_send_exactly_one_mail(
    notifications: ServedApp, market: Market, mailbox: Mailbox, db: Database
) -> None:
    """Twenty replicas handling the same order:completed at once: one confirmation, one
    "you sold", one row each."""
    seller, seller_email = await market.user()
    buyer, buyer_email = await market.user()
    order = await market.order(buyer, await market.ticket(seller))
    await wait_until(lambda: handled(notifications) >= 4)  # replicated: users, ticket, order
    completed = await market.completed(order)
    handler = mailing(
        notifications.component(Database),
        notifications.component(Mailer),
        notifications.component(Composer),
        notifications.component(service.MailMetrics),
        service.mails_of_completed_order,
    )
    await asyncio.gather(*(handler(completed) for _ in range(20)))
    await mails_to(mailbox, buyer_email)
    await mails_to(mailbox, seller_email)
    await wait_until(lambda: handled(notifications) >= 5)  # the listener's own delivery too
    assert len(mailbox.to(buyer_email)) == 1
    assert len(mailbox.to(seller_email)) == 1
    assert await sent_rows(db) == 2


async def test_an_event_before_its_user_is_known_waits_then_sends(
    notifications: ServedApp, market: Market, mailbox: Mailbox, bus: EventBus
) -> None:
    seller, _ = await market.user()
    buyer, buyer_email = await market.user(announce=False)
    order = await market.order(buyer, await market.ticket(seller))
    await market.declined(order, "Your card was declined.")

    await tried_and_not_acked(bus, "notifications-payment-declined")
    assert mailbox.to(buyer_email) == []

    await market.publish(UserCreated(id=buyer, email=buyer_email))
    [mail] = await mails_to(mailbox, buyer_email)
    assert mail["Subject"] == "Payment declined: Concert"


async def test_a_send_that_fails_records_nothing_and_the_event_is_sent_once_the_server_is_back(
    serve: Serve, market: Market, bus: EventBus, db: Database
) -> None:
    port = free_port()  # no SMTP server there yet
    async with serve(SMTP_PORT=port):
        seller, _ = await market.user()
        buyer, buyer_email = await market.user()
        order = await market.order(buyer, await market.ticket(seller))
        await market.refunded(order)
        await tried_and_not_acked(bus, "notifications-payment-refunded")
        assert await sent_rows(db) == 0  # the claim was rolled back with the failed send

        mailbox = Mailbox()
        controller = Controller(MailboxHandler(mailbox), hostname="127.0.0.1", port=port)
        controller.start()
        try:
            [mail] = await mails_to(mailbox, buyer_email)
        finally:
            controller.stop()
    assert mail["Subject"] == "Refund issued: Concert"
    assert await sent_rows(db) == 1
