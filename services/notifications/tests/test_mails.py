"""Each event that concerns a buyer or a seller mails them, through a real SMTP server,
rendered to HTML and text; the e-ticket travels with the confirmation."""

from __future__ import annotations

from email.message import EmailMessage

from ticketing_common.admission import admission_key, issue, read
from ticketing_common.events.contracts import CancelReason
from ticketing_common.testing import ServedApp, wait_until
from ticketing_devstack.mailcatcher import Mailbox
from ticketing_notifications.settings import Settings

from .conftest import Market, handled, mails_to, qr_codes_in_pdf, qr_codes_in_png


def bodies(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None
    assert html is not None
    return str(text.get_content()), str(html.get_content())


async def test_completed_order_mails_the_buyer_the_eticket_and_the_seller_the_sale(
    notifications: ServedApp, market: Market, mailbox: Mailbox, settings: Settings
) -> None:
    seller, seller_email = await market.user()
    buyer, buyer_email = await market.user()
    ticket = await market.ticket(seller, title="Jazz & Blues <night>", price="45.00")
    order = await market.order(buyer, ticket)
    completed = await market.completed(order)

    [confirmation] = await mails_to(mailbox, buyer_email)
    assert confirmation["Subject"] == "Your ticket for Jazz & Blues <night>"
    assert confirmation["From"] == "Ticketing <tickets@example.test>"
    assert (
        str(confirmation["Message-ID"]).strip()
        == f"<{completed.id}.order-confirmation@example.test>"
    )
    text, html = bodies(confirmation)
    code = issue(admission_key(settings.JWT_KEY), order_id=order.id, ticket_id=ticket.id)
    assert read(admission_key(settings.JWT_KEY), code) is not None
    order_url = f"https://tickets.example.test/orders/{order.id}"
    assert code in text
    assert order_url in text
    assert "$45.00" in text
    assert f'href="{order_url}"' in html
    assert "Jazz &amp; Blues &lt;night&gt;" in html  # escaped in HTML, never markup
    # The QR code shown inline and the PDF attached both scan to the admission code.
    [pdf] = [part for part in confirmation.iter_attachments() if part.get_filename()]
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_filename() == f"ticket-{order.id}.pdf"
    assert qr_codes_in_pdf(pdf.get_content()) == [code]
    [image] = [part for part in confirmation.walk() if part.get_content_type() == "image/png"]
    assert isinstance(image, EmailMessage)
    assert f'src="cid:{str(image["Content-ID"]).strip("<>")}"' in html
    assert qr_codes_in_png(image.get_content()) == [code]

    [sold] = await mails_to(mailbox, seller_email)
    assert sold["Subject"] == "You sold Jazz & Blues <night>"
    assert str(sold["Message-ID"]).strip() == f"<{completed.id}.ticket-sold@example.test>"
    text, _ = bodies(sold)
    assert "$45.00" in text
    assert not list(sold.iter_attachments())


async def test_expiry_withdrawal_decline_and_refund_each_mail_the_buyer_and_nothing_else_does(
    notifications: ServedApp, market: Market, mailbox: Mailbox
) -> None:
    seller, seller_email = await market.user()
    buyer, buyer_email = await market.user()
    tickets = [await market.ticket(seller, title=f"Show {n}") for n in range(5)]
    expired, withdrawn, declined, refunded, cancelled = [
        await market.order(buyer, ticket) for ticket in tickets
    ]
    await market.cancelled(expired, CancelReason.EXPIRED)
    await market.cancelled(withdrawn, CancelReason.WITHDRAWN)
    await market.declined(declined, "Your card was declined.")
    # A refund: order:cancelled (reason refunded) says nothing, payment:refunded does.
    await market.cancelled(refunded, CancelReason.REFUNDED, version=3)
    await market.refunded(refunded)
    await market.cancelled(cancelled, CancelReason.CANCELLED)  # the buyer's own doing

    # 2 users, 5 tickets, 5 orders, 6 events about them: all handled, nothing pending.
    await wait_until(lambda: handled(notifications) >= 18)
    mails = {str(mail["Subject"]): mail for mail in await mails_to(mailbox, buyer_email, 4)}
    assert sorted(mails) == [
        "Payment declined: Show 2",
        "Refund issued: Show 3",
        "The seller withdrew Show 1",
        "Your order for Show 0 expired",
    ]
    assert len(mailbox.to(buyer_email)) == 4
    assert mailbox.to(seller_email) == []
    text, _ = bodies(mails["Payment declined: Show 2"])
    assert "Your card was declined." in text
    text, _ = bodies(mails["Refund issued: Show 3"])
    assert "$20.50" in text
    text, _ = bodies(mails["Your order for Show 0 expired"])
    assert f"https://tickets.example.test/tickets/{tickets[0].id}" in text


async def test_an_order_of_several_units_is_mailed_with_its_quantity_and_total(
    notifications: ServedApp, market: Market, mailbox: Mailbox
) -> None:
    seller, seller_email = await market.user()
    buyer, buyer_email = await market.user()
    listing = await market.ticket(seller, title="Standing", price="45.00")
    order = await market.order(buyer, listing, quantity=3)
    await market.completed(order)

    [confirmation] = await mails_to(mailbox, buyer_email)
    text, html = bodies(confirmation)
    assert "admits 3 people, once" in text
    assert "Tickets: 3" in text
    assert "Total: $135.00" in text
    assert "$135.00" in html
    [sold] = await mails_to(mailbox, seller_email)
    text, _ = bodies(sold)
    assert "3 of your tickets" in text
    assert "sold for $135.00\r\n($45.00 each)" in text

    await market.cancelled(order, CancelReason.REFUNDED, version=3)
    await market.refunded(order)
    mails = await mails_to(mailbox, buyer_email, 2)
    [refund] = [mail for mail in mails if str(mail["Subject"]) == "Refund issued: Standing"]
    text, _ = bodies(refund)
    assert 'We refunded $135.00 for 3 tickets "Standing"' in text
