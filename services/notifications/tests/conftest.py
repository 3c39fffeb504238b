"""Fixtures: notifications served on a fresh, migrated PostgreSQL database and a fresh
NATS namespace (the shared harness, ``ticketing_common.testing.service``), mailing a
real SMTP server: the catcher of ``ticketing up`` (aiosmtpd), in this process, for the
whole session. The other services are simulated by publishing their events; each
test's users have addresses of their own, so tests read only their own mail."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.message import EmailMessage
from uuid import UUID, uuid4

import pytest
import zxingcpp
from aiosmtpd.controller import Controller
from PIL import Image
from pypdf import PdfReader

from ticketing_common.embedded import free_port
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import (
    CancelReason,
    Envelope,
    OrderCancelled,
    OrderCompleted,
    OrderCreated,
    OrderStatus,
    P,
    PaymentDeclined,
    PaymentRefunded,
    PricedTicketRef,
    TicketCreated,
    TicketRef,
    UserCreated,
)
from ticketing_common.events.listener import ListenerGroup
from ticketing_common.spec import ServiceSpec
from ticketing_common.testing import ServedApp, wait_until
from ticketing_devstack.mailcatcher import CaughtMail, Mailbox, MailboxHandler
from ticketing_notifications.app import SPEC
from ticketing_notifications.settings import Settings

__all__ = ["Market", "handled", "mails_to", "qr_codes_in_pdf", "qr_codes_in_png"]


@pytest.fixture(scope="session")
def service_spec() -> ServiceSpec[Settings]:
    return SPEC


@dataclass(frozen=True)
class SmtpServer:
    mailbox: Mailbox
    port: int


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpServer]:
    """One catcher for the session (in aiosmtpd's thread)."""
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(MailboxHandler(mailbox), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer(mailbox, port)
    finally:
        controller.stop()


@pytest.fixture
def mailbox(smtp_server: SmtpServer) -> Mailbox:
    return smtp_server.mailbox


@pytest.fixture
def settings_overrides(smtp_server: SmtpServer) -> dict[str, object]:
    return {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": smtp_server.port,
        "SITE_URL": "https://tickets.example.test",
        "MAIL_FROM": "Ticketing <tickets@example.test>",
    }


@pytest.fixture
def notifications(served: ServedApp) -> ServedApp:
    return served


def handled(served: ServedApp) -> int:
    """Events the served app's listeners have acked."""
    return served.component(ListenerGroup).handled


async def mails_to(mailbox: Mailbox, address: str, count: int = 1) -> list[EmailMessage]:
    """The first ``count`` mails to ``address``, once they arrived (oldest first)."""

    def arrived() -> list[CaughtMail] | None:
        found = mailbox.to(address)
        return found if len(found) >= count else None

    return [mail.message for mail in await wait_until(arrived)]


def qr_codes_in_pdf(document: bytes) -> list[str]:
    [page] = PdfReader(io.BytesIO(document)).pages
    codes = []
    for image in page.images:
        assert image.image is not None
        codes += [result.text for result in zxingcpp.read_barcodes(image.image)]
    return codes


def qr_codes_in_png(png: bytes) -> list[str]:
    return [result.text for result in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))]


@dataclass
class Market:
    """The rest of the system, as notifications hears it: events on the bus."""

    bus: EventBus

    async def publish(self, payload: P) -> Envelope[P]:
        envelope = Envelope.of(payload)
        await self.bus.publish(envelope)
        return envelope

    async def user(self, *, announce: bool = True) -> tuple[UUID, str]:
        """A new account and its (unique) address; announced unless told not to."""
        user_id = uuid4()
        email = f"{user_id.hex[:12]}@example.test"
        if announce:
            await self.publish(UserCreated(id=user_id, email=email))
        return user_id, email

    async def ticket(
        self, seller: UUID, *, title: str = "Concert", price: str = "20.50"
    ) -> TicketCreated:
        created = TicketCreated(
            id=uuid4(), version=0, title=title, price=Decimal(price), user_id=seller
        )
        await self.publish(created)
        return created

    async def order(self, buyer: UUID, ticket: TicketCreated, *, quantity: int = 1) -> OrderCreated:
        order = OrderCreated(
            id=uuid4(),
            version=0,
            status=OrderStatus.CREATED,
            user_id=buyer,
            expires_at=datetime.now(UTC) + timedelta(minutes=15),
            ticket=PricedTicketRef(id=ticket.id, price=ticket.price),
            quantity=quantity,
        )
        await self.publish(order)
        return order

    async def completed(self, order: OrderCreated) -> Envelope[OrderCompleted]:
        return await self.publish(
            OrderCompleted(
                id=order.id,
                version=2,
                user_id=order.user_id,
                ticket=order.ticket,
                quantity=order.quantity,
            )
        )

    async def cancelled(
        self, order: OrderCreated, reason: CancelReason, *, version: int = 1
    ) -> Envelope[OrderCancelled]:
        return await self.publish(
            OrderCancelled(
                id=order.id, version=version, ticket=TicketRef(id=order.ticket.id), reason=reason
            )
        )

    async def declined(self, order: OrderCreated, message: str) -> Envelope[PaymentDeclined]:
        return await self.publish(
            PaymentDeclined(id=uuid4(), order_id=order.id, user_id=order.user_id, message=message)
        )

    async def refunded(self, order: OrderCreated) -> Envelope[PaymentRefunded]:
        return await self.publish(
            PaymentRefunded(id=uuid4(), order_id=order.id, refund_id=f"re_{uuid4().hex}")
        )


@pytest.fixture
def market(bus: EventBus) -> Market:
    return Market(bus)
