"""The mails: their kinds, and how one becomes a message (Jinja2 templates, HTML and text).

Every message is multipart/alternative (text, then HTML) with its attachments; an
image the HTML shows (the e-ticket's QR code) travels as a related part, referenced
by ``cid:``. The Message-ID is derived from the event and the kind, so the rare
second copy a crash can cause (docs/operations.md, "Mail") is recognisably the same
mail to any client that de-duplicates by it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from enum import StrEnum
from uuid import UUID

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from ticketing_notifications.settings import Settings


class MailKind(StrEnum):
    """What a mail tells; with the event id, the key of exactly-once (``sent_mail``)."""

    ORDER_CONFIRMATION = "order-confirmation"
    TICKET_SOLD = "ticket-sold"
    ORDER_EXPIRED = "order-expired"
    ORDER_WITHDRAWN = "order-withdrawn"
    PAYMENT_DECLINED = "payment-declined"
    REFUND_ISSUED = "refund-issued"


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    maintype: str
    subtype: str


@dataclass(frozen=True)
class InlineImage:
    """An image the HTML part shows as ``<img src="cid:{cid}">``."""

    cid: str
    png: bytes


@dataclass(frozen=True)
class Mail:
    """One mail to write: to whom, about what, and what the templates need."""

    kind: MailKind
    recipient: str
    subject: str
    context: Mapping[str, object]
    inline: tuple[InlineImage, ...] = ()
    attachments: tuple[Attachment, ...] = ()


def one_line(text: str) -> str:
    """A title fit for a subject line: a header cannot hold line breaks."""
    return " ".join(text.split())


def message_id(event_id: UUID, kind: MailKind, domain: str) -> str:
    """The same for every send of one event's mail of one kind."""
    return f"<{event_id}.{kind.value}@{domain}>"


class Composer:
    """Renders mails with the package's templates (``templates/<kind>.html`` and ``.txt``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        loader = PackageLoader("ticketing_notifications", "templates")
        self.html = Environment(
            loader=loader, autoescape=select_autoescape(["html"]), undefined=StrictUndefined
        )
        # Plain text is not escaped: a title with "&" reads as "&" there.
        self.text = Environment(loader=loader, autoescape=False, undefined=StrictUndefined)  # noqa: S701

    def render(self, mail: Mail) -> tuple[str, str]:
        """The mail's text and HTML bodies."""
        context = {"subject": mail.subject, "site_url": self.settings.site_url, **mail.context}
        text = self.text.get_template(f"{mail.kind.value}.txt").render(context)
        html = self.html.get_template(f"{mail.kind.value}.html").render(context)
        return text, html

    def message(self, mail: Mail, *, event_id: UUID) -> EmailMessage:
        sender = self.settings.sender
        text, html = self.render(mail)
        message = EmailMessage()
        message["From"] = sender
        message["To"] = mail.recipient
        message["Subject"] = mail.subject
        message["Date"] = formatdate(localtime=False, usegmt=True)
        message["Message-ID"] = message_id(event_id, mail.kind, sender.domain)
        message.set_content(text)
        message.add_alternative(html, subtype="html")
        if mail.inline:
            # The alternative just added: text/plain first, then text/html.
            html_part = next(
                part for part in message.iter_parts() if part.get_content_type() == "text/html"
            )
            assert isinstance(html_part, EmailMessage)
            for image in mail.inline:
                html_part.add_related(image.png, "image", "png", cid=f"<{image.cid}>")
        for attachment in mail.attachments:
            message.add_attachment(
                attachment.content,
                maintype=attachment.maintype,
                subtype=attachment.subtype,
                filename=attachment.filename,
            )
        return message
