"""Through a real browser against `ticketing up`: a seller lists a ticket, a buyer pays for
it, gets the e-ticket by mail and as a PDF, and the seller admits it once at the door
(docs/after-purchase.md); an unpaid order expires and its ticket is for sale again
(SPEC §1, §6). Each page is saved once under docs/screenshots/."""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import zxingcpp
from playwright.sync_api import Page, expect
from pypdf import PdfReader

from tests.e2e.conftest import PASSWORD, Stack

from .conftest import (
    EXPIRATION_WINDOW_SECONDS,
    OpenContext,
    mailbox_url,
    new_email,
    screenshot,
    sell,
    show_to_camera,
    sign_up,
)

pytestmark = pytest.mark.e2e

T = TypeVar("T")

EVENT_TIMEOUT = 60.0  # how long events may take to reach every service on a busy machine


def _listed(page: Page, ticket_id: str) -> bool:
    page.goto("/")
    return page.locator(f'[data-ticket-id="{ticket_id}"]').count() == 1


def _eventually(what: str, check: Callable[[], bool], timeout: float = EVENT_TIMEOUT) -> None:
    _eventually_value(what, check, timeout)


def _eventually_value(
    what: str, probe: Callable[[], T | None], timeout: float = EVENT_TIMEOUT
) -> T:
    deadline = time.monotonic() + timeout
    while not (found := probe()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        time.sleep(0.5)
    return found


def test_a_buyer_pays_gets_the_e_ticket_by_mail_and_as_a_pdf_and_the_seller_admits_it_once(
    stack: Stack, new_context: OpenContext, camera_film: Path
) -> None:
    seller = new_context().new_page()
    sign_up(seller, new_email(), shot="signup")
    ticket_id = sell(seller, "Symphony No. 9", "42.5", shot="sell")
    expect(seller.locator(".price.big")).to_have_text("$42.50")

    buyer = new_context().new_page()
    buyer.goto("/signin")
    screenshot(buyer, "signin")
    buyer_email = new_email()
    sign_up(buyer, buyer_email)
    buyer.goto("/")
    card = buyer.locator(f'[data-ticket-id="{ticket_id}"]')
    expect(card).to_contain_text("$42.50")
    screenshot(buyer, "landing")
    card.locator("a").click()
    expect(buyer.locator("h1")).to_have_text("Symphony No. 9")
    screenshot(buyer, "ticket")

    buyer.click("button:has-text('Purchase')")
    buyer.wait_for_url(re.compile(r"/orders/[0-9a-f-]{36}$"))
    countdown = buyer.locator("[data-countdown]")
    first = countdown.inner_text()
    # The countdown ticks in the page (a little JS), without reloading it.
    buyer.wait_for_function(
        "first => document.querySelector('[data-countdown]').textContent !== first", arg=first
    )
    screenshot(buyer, "order")
    expect(buyer.get_by_label("Visa 4242 4242 4242 4242 (succeeds)")).to_be_checked()
    buyer.click("button:has-text('Pay')")

    buyer.wait_for_url(re.compile(r"/orders\?paid="))
    row = buyer.locator("tr", has_text="Symphony No. 9")
    expect(row.locator(".status")).to_have_text("Complete", timeout=EVENT_TIMEOUT * 1000)
    expect(buyer.locator(".alert.success")).to_contain_text("is complete")
    expect(row.locator(".qr.small svg")).to_be_visible()
    screenshot(buyer, "orders")
    assert not _listed(buyer, ticket_id)

    # The e-ticket: its QR code and code on the order page, and the PDF download.
    buyer.goto("/orders")
    row.locator("a", has_text="Symphony No. 9").click()
    code = buyer.locator(".admission-code").inner_text()
    assert code.startswith("TA1.")
    expect(buyer.locator(".eticket .qr svg")).to_be_visible()
    expect(buyer.locator("button:has-text('Request refund')")).to_be_visible()
    screenshot(buyer, "eticket")
    with buyer.expect_download() as download:
        buyer.click("text=Download PDF")
    assert download.value.suggested_filename == f"ticket-{buyer.url.rsplit('/', 1)[-1]}.pdf"
    _assert_ticket_pdf(download.value.path().read_bytes(), "Symphony No. 9", code)

    # The confirmation mail with the e-ticket, caught by the local mailbox.
    _assert_mailed(stack, new_context().new_page(), buyer_email, "Symphony No. 9", code)

    # The seller admits it at the door by typing the code...
    seller.goto("/checkin")
    screenshot(seller, "checkin")
    seller.fill("#code", code)
    seller.click("form#checkin-form button:has-text('Check in')")
    admitted = seller.locator('[data-outcome="admitted"]')
    expect(admitted).to_contain_text("Admitted")
    expect(admitted).to_contain_text("Symphony No. 9")
    screenshot(seller, "checkin-admitted")

    # ...and a second scan, with the camera this time, says it was already admitted.
    show_to_camera(camera_film, code)
    seller.context.grant_permissions(["camera"], origin=stack.url)
    seller.goto("/checkin")
    already = seller.locator('[data-outcome="already"]')
    # The camera starts, a frame decodes, the form posts: on a busy machine, seconds.
    expect(already).to_contain_text(
        re.compile(r"Already admitted at \d\d:\d\d:\d\d UTC by "), timeout=EVENT_TIMEOUT * 1000
    )
    screenshot(seller, "checkin-already")

    buyer.reload()
    expect(buyer.locator(".checked-in")).to_contain_text("Checked in at")
    expect(buyer.locator("button:has-text('Request refund')")).to_have_count(0)

    seller.click("nav >> text=My listings")
    sold = seller.locator(f'tr[data-ticket-id="{ticket_id}"]')
    expect(sold.locator(".listing-status")).to_have_text("Sold")
    expect(seller.locator('[data-total="revenue"]')).to_have_text("$42.50")
    screenshot(seller, "dashboard")


def _assert_ticket_pdf(document: bytes, title: str, code: str) -> None:
    """The PDF names the ticket and its QR code decodes to the order page's code."""
    page = PdfReader(io.BytesIO(document)).pages[0]
    assert title in page.extract_text()
    [image] = page.images
    assert image.image is not None
    assert [found.text for found in zxingcpp.read_barcodes(image.image)] == [code]


def _assert_mailed(stack: Stack, page: Page, email: str, title: str, code: str) -> None:
    """The buyer's confirmation arrived in the mailbox `ticketing up` runs (its JSON API),
    with the code in its text and the e-ticket PDF attached."""
    mailbox = mailbox_url(stack)
    assert mailbox is not None, "ticketing up printed no mailbox:\n" + "\n".join(stack.lines)
    api = httpx.Client(base_url=mailbox.rstrip("/"), timeout=10)

    def confirmation() -> dict[str, Any] | None:
        for summary in api.get("/api/messages").raise_for_status().json():
            if email in summary["to"] and summary["subject"] == f"Your ticket for {title}":
                detail: dict[str, Any] = api.get(f"/api/messages/{summary['id']}").json()
                return detail
        return None

    mail = _eventually_value("the confirmation mail", confirmation)
    assert code in mail["text"]
    [attached] = [part for part in mail["parts"] if part["contentType"] == "application/pdf"]
    _assert_ticket_pdf(api.get(attached["url"]).raise_for_status().content, title, code)
    api.close()
    page.goto(mailbox)
    page.get_by_role("link", name=f"Your ticket for {title}").first.click()
    expect(page.get_by_role("link", name=re.compile(r"ticket-.*\.pdf"))).to_be_visible()
    expect(page.frame_locator("iframe").get_by_text(code)).to_be_visible()
    screenshot(page, "mailbox")


def test_a_buyer_chooses_how_many_units_of_a_general_admission_listing_to_buy(
    stack: Stack, new_context: OpenContext
) -> None:
    seller = new_context().new_page()
    sign_up(seller, new_email())
    listing_id = sell(seller, "Summer Festival, standing", "40", quantity="50")
    expect(seller.locator(".units-left")).to_have_text("50 left")

    buyer = new_context().new_page()
    sign_up(buyer, new_email())
    buyer.goto(f"/tickets/{listing_id}")
    expect(buyer.locator(".price.big")).to_contain_text("$40.00 each")
    buyer.select_option("#quantity", "3")
    screenshot(buyer, "ga-ticket")
    buyer.click("button:has-text('Purchase')")
    buyer.wait_for_url(re.compile(r"/orders/[0-9a-f-]{36}$"))
    expect(buyer.locator(".order-quantity")).to_have_text("3 \u00d7 $40.00")
    screenshot(buyer, "ga-order")

    # Tickets counts the order's units once its order:created arrives.
    def left() -> bool:
        buyer.goto(f"/tickets/{listing_id}")
        return buyer.locator(".units-left").inner_text() == "47 left"

    _eventually("the listing showing 47 left", left)


def test_a_declined_card_shows_the_providers_message_and_the_form_stays_usable(
    stack: Stack, new_context: OpenContext
) -> None:
    seller = new_context().new_page()
    sign_up(seller, new_email())
    ticket_id = sell(seller, "Late show", "15")
    buyer = new_context().new_page()
    sign_up(buyer, new_email())
    buyer.goto(f"/tickets/{ticket_id}")
    buyer.click("button:has-text('Purchase')")
    buyer.wait_for_url(re.compile(r"/orders/[0-9a-f-]{36}$"))
    buyer.get_by_label("Visa 4000 0000 0000 0002 (declined)").check()
    buyer.click("button:has-text('Pay')")
    expect(buyer.locator('[data-field="token"]')).to_contain_text("declined")
    expect(buyer.get_by_label("Visa 4000 0000 0000 0002 (declined)")).to_be_checked()
    expect(buyer.locator("button:has-text('Pay')")).to_be_enabled()
    expect(buyer.locator("[data-countdown]")).to_be_visible()


def test_an_unpaid_order_expires_and_its_ticket_is_for_sale_again(
    stack: Stack, new_context: OpenContext
) -> None:
    seller = new_context().new_page()
    sign_up(seller, new_email())
    ticket_id = sell(seller, "Matinee", "9.99")
    buyer = new_context().new_page()
    sign_up(buyer, new_email())
    buyer.goto(f"/tickets/{ticket_id}")
    buyer.click("button:has-text('Purchase')")
    buyer.wait_for_url(re.compile(r"/orders/[0-9a-f-]{36}$"))
    order_url = buyer.url
    expect(buyer.locator("[data-countdown]")).to_be_visible()
    assert not _listed(seller, ticket_id)

    def says_expired() -> bool:
        buyer.goto(order_url)
        return buyer.get_by_text("This order has expired").is_visible()

    _eventually("the order page saying it expired", says_expired, EXPIRATION_WINDOW_SECONDS + 30)
    expect(buyer.locator("form.pay-form")).to_have_count(0)
    expect(buyer.get_by_role("link", name="Browse tickets")).to_be_visible()
    _eventually("the ticket back on the landing page", lambda: _listed(seller, ticket_id))


def test_form_errors_appear_next_to_their_fields(stack: Stack, new_context: OpenContext) -> None:
    page = new_context().new_page()
    page.goto("/signup")
    page.fill("#email", "not-an-email")
    page.fill("#password", "short")
    page.click("button:has-text('Sign up')")
    expect(page.locator('[data-field="email"]')).to_have_text("Email must be valid")
    expect(page.locator('[data-field="password"]')).to_contain_text("8 and 128")
    expect(page.locator("#email")).to_have_value("not-an-email")
    screenshot(page, "signup-errors")

    sign_up(page, new_email())
    page.goto("/tickets/new")
    page.fill("#title", "Opera")
    page.fill("#price", "0")
    page.click("button:has-text('List ticket')")
    expect(page.locator('[data-field="price"]')).to_be_visible()
    expect(page.locator("#title")).to_have_value("Opera")


def test_a_signed_out_visitor_is_sent_to_sign_in_and_back(
    stack: Stack, new_context: OpenContext
) -> None:
    email = new_email()
    page = new_context().new_page()
    sign_up(page, email)
    page.click("button:has-text('Sign out')")
    expect(page.locator("nav")).to_contain_text("Sign in")
    page.goto("/orders")
    page.wait_for_url(re.compile(r"/signin\?next="))
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url(re.compile(r"/orders$"))
    expect(page.locator("h1")).to_have_text("My orders")


def test_a_cross_site_form_post_is_rejected(stack: Stack, new_context: OpenContext) -> None:
    context = new_context()
    page = context.new_page()
    sign_up(page, new_email())
    title = f"Forged {new_email()}"
    # A page on another site that posts the sell form, without the CSRF token.
    context.route(
        "https://attacker.example/**",
        lambda route: route.fulfill(
            content_type="text/html",
            body=(
                f'<form method="post" action="{stack.url}/tickets/new">'
                f'<input name="title" value="{title}"><input name="price" value="5">'
                '<button type="submit">Win a prize</button></form>'
            ),
        ),
    )
    page.goto("https://attacker.example/")
    page.click("button")
    expect(page.locator("h1")).to_have_text("Not allowed")
    page.goto(f"{stack.url}/")
    expect(page.get_by_text(title)).to_have_count(0)


def test_the_404_page(stack: Stack, new_context: OpenContext) -> None:
    page = new_context().new_page()
    response = page.goto("/no-such-page")
    assert response is not None
    assert response.status == 404
    expect(page.locator("h1")).to_have_text("Page not found")
    screenshot(page, "not-found")


def test_selling_works_with_javascript_off(stack: Stack, new_context: OpenContext) -> None:
    page = new_context(javascript=False).new_page()
    sign_up(page, new_email())
    ticket_id = sell(page, "No-script night", "12")
    expect(page.locator(".price.big")).to_have_text("$12.00")
    assert _listed(page, ticket_id)
