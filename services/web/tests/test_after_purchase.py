"""After the purchase (docs/after-purchase.md), through the pages against the real
services: the e-ticket on the order page and in My orders, its PDF (read back with
pypdf, its QR code decoded with zxing-cpp), the check-in page's answers, the refund
button, and the seller's dashboard with its withdraw button."""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import Callable
from html import unescape
from uuid import uuid4

import pytest
import zxingcpp
from pypdf import PdfReader

from ticketing_common.testing import wait_until

from .conftest import Browser, admission_code, buy_and_pay, field_error

GATES = 8


@pytest.fixture
def with_payments() -> bool:
    return True


def _outcome(page: str) -> tuple[str, str] | None:
    """The check-in page's answer: its kind (admitted, already, refused) and its text."""
    found = re.search(r'data-outcome="(\w+)">(.*?)</div>', page, re.S)
    if found is None:
        return None
    text = " ".join(unescape(re.sub(r"<[^>]+>", " ", found.group(2))).split())
    return found.group(1), text


async def _people(make_browser: Callable[[], Browser]) -> tuple[Browser, Browser]:
    seller, buyer = make_browser(), make_browser()
    await seller.sign_up(f"{uuid4().hex}@example.com")
    await buyer.sign_up(f"{uuid4().hex}@example.com")
    return seller, buyer


async def test_a_paid_order_shows_its_e_ticket_and_the_pdf_scans_to_the_same_code(
    make_browser: Callable[[], Browser],
) -> None:
    seller, buyer = await _people(make_browser)
    order_page = await buy_and_pay(seller, buyer, "Concert \u2013 Nr. 5", "42.5")
    order_id = order_page.rsplit("/", 1)[-1]

    page = (await buyer.get(order_page)).text
    code = admission_code(page)
    assert code is not None
    assert code.startswith("TA1.")
    assert '<figure class="qr"' in page
    assert "<svg" in page
    assert f'href="/orders/{order_id}/ticket.pdf"' in page
    assert "Request refund</button>" in page
    assert "Checked in at" not in page

    mine = (await buyer.get("/orders")).text
    row = mine[mine.index(f'data-order-id="{order_id}"') :]
    assert '<a class="qr small"' in row.split("</tr>")[0]
    assert f'href="/orders/{order_id}/ticket.pdf"' in row.split("</tr>")[0]

    download = await buyer.get(f"/orders/{order_id}/ticket.pdf")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/pdf"
    assert (
        download.headers["content-disposition"] == f'attachment; filename="ticket-{order_id}.pdf"'
    )
    reader = PdfReader(io.BytesIO(download.content))
    text = reader.pages[0].extract_text()
    assert "Concert" in text
    assert "$42.50 USD" in text
    assert order_id in text
    [image] = reader.pages[0].images
    assert image.image is not None
    assert [found.text for found in zxingcpp.read_barcodes(image.image)] == [code]

    # Only the buyer downloads it; an order without an e-ticket has no PDF.
    assert (await seller.get(f"/orders/{order_id}/ticket.pdf")).status_code == 404
    unpaid = await buyer.purchase(await seller.sell("Unpaid", "5"))
    assert (await buyer.get(f"{unpaid}/ticket.pdf")).status_code == 404
    assert admission_code((await buyer.get(unpaid)).text) is None


async def test_check_in_admits_a_ticket_once_even_from_concurrent_gates_and_says_why_it_refuses(
    make_browser: Callable[[], Browser],
) -> None:
    seller, buyer = await _people(make_browser)
    order_page = await buy_and_pay(seller, buyer, "Jazz at the door", "30")
    code = admission_code((await buyer.get(order_page)).text)
    assert code is not None

    form = await seller.get("/checkin")
    assert form.status_code == 200
    assert "worker-src blob:" in form.headers["content-security-policy"]
    assert "http" not in form.headers["content-security-policy"]  # nothing of another origin
    assert form.headers["permissions-policy"].startswith("camera=(self)")
    assert '<script type="module" src="/static/checkin.js">' in form.text
    # Every other page keeps the camera off.
    assert "camera=()" in (await seller.get("/")).headers["permissions-policy"]

    # Two gates (here eight) post the same ticket at once: exactly one admits it.
    gates = await asyncio.gather(
        *(
            seller.submit("/checkin", {"code": f"  {code} "}, form_page="/checkin")
            for _ in range(GATES)
        )
    )
    assert sorted(gate.status_code for gate in gates) == [201] + [409] * (GATES - 1)
    [admitted] = [gate for gate in gates if gate.status_code == 201]
    kind, text = _outcome(admitted.text) or ("", "")
    assert kind == "admitted"
    assert text.startswith("Admitted Jazz at the door at ")
    again = await seller.submit("/checkin", {"code": code}, form_page="/checkin")
    assert again.status_code == 409
    kind, text = _outcome(again.text) or ("", "")
    assert kind == "already"
    assert re.fullmatch(
        r"Already admitted Already admitted at [\d:]{8} UTC by \S+@example\.com", text
    )

    forged = await seller.submit("/checkin", {"code": code[:-2] + "xx"}, form_page="/checkin")
    assert forged.status_code == 400
    assert field_error(forged.text, "code") == "Not a valid ticket code"
    assert (_outcome(forged.text) or ("",))[0] == "refused"
    stranger = await buyer.submit("/checkin", {"code": code}, form_page="/checkin")
    assert stranger.status_code == 403
    assert _outcome(stranger.text) == (
        "refused",
        "Not admitted Only the seller of this ticket can check it in",
    )

    # A used ticket says so on the buyer's page, and can no longer be refunded.
    page = await buyer.get(order_page)
    assert "Checked in at " in page.text
    assert "Request refund</button>" not in page.text
    refused = await buyer.submit(f"{order_page}/refund", {}, form_page=order_page)
    assert refused.status_code == 409
    assert "This ticket was already used at the door" in refused.text


async def test_a_refund_voids_the_e_ticket_and_the_dashboard_shows_and_withdraws_listings(
    make_browser: Callable[[], Browser],
) -> None:
    seller, buyer = await _people(make_browser)
    refunded_page = await buy_and_pay(seller, buyer, "Refunded show", "20")
    await buy_and_pay(seller, buyer, "Sold show", "12.5")
    code = admission_code((await buyer.get(refunded_page)).text)
    assert code is not None

    refund = await buyer.submit(f"{refunded_page}/refund", {}, form_page=refunded_page)
    assert refund.status_code == 303
    assert refund.headers["location"] == refunded_page
    page = (await buyer.get(refunded_page)).text
    assert "This order was refunded" in page
    assert admission_code(page) is None
    void = await seller.submit("/checkin", {"code": code}, form_page="/checkin")
    assert void.status_code == 400
    assert "was refunded" in (_outcome(void.text) or ("", ""))[1]

    spare = await seller.sell("Spare sat", "7")
    edit_page = f"/tickets/{spare}/edit"
    assert 'value="Spare sat"' in (await seller.get(edit_page)).text
    assert (await buyer.get(edit_page)).status_code == 404  # not the buyer's listing
    bad = await seller.submit(
        edit_page, {"title": "Spare seat", "price": "-1"}, form_page=edit_page
    )
    assert bad.status_code == 400
    assert field_error(bad.text, "price") is not None
    edited = await seller.submit(
        edit_page, {"title": "Spare seat", "price": "7"}, form_page=edit_page
    )
    assert edited.status_code == 303

    async def refunded_back_on_sale() -> str | None:
        # Tickets puts the refunded ticket back on sale when order:cancelled reaches it.
        page = (await seller.get("/dashboard")).text
        return page if re.search(r'data-total="for-sale">2<', page) else None

    dashboard = await wait_until(refunded_back_on_sale, timeout=30, interval=0.2)
    assert re.search(r'data-total="sold">1<', dashboard)
    assert re.search(r'data-total="revenue">\$12\.50<', dashboard)
    assert "Sold show" in dashboard
    assert "Spare seat" in dashboard

    withdrawn = await seller.submit(f"/tickets/{spare}/withdraw", {}, form_page="/dashboard")
    assert withdrawn.status_code == 303
    assert withdrawn.headers["location"] == "/dashboard"
    dashboard = (await seller.get("/dashboard")).text
    row = dashboard[dashboard.index(f'data-ticket-id="{spare}"') :].split("</tr>")[0]
    assert ">Withdrawn<" in row
    assert "Withdraw</button>" not in row
    assert re.search(r'data-total="withdrawn">1<', dashboard)
    assert f'data-ticket-id="{spare}"' not in (await seller.get("/")).text

    sold_ticket = re.search(
        r'data-ticket-id="([0-9a-f-]{36})">\s*<td><a href="[^"]*">Sold show<', dashboard
    )
    assert sold_ticket is not None
    too_late = await seller.submit(
        f"/tickets/{sold_ticket.group(1)}/withdraw", {}, form_page="/dashboard"
    )
    assert too_late.status_code == 409
    assert "Ticket is sold" in too_late.text
