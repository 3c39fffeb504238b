"""Forms: each API error next to its field with the visitor's input kept, protected pages
send signed-out visitors to sign in and back, and a purchase leads to the order page."""

from __future__ import annotations

from collections.abc import Callable
from html import unescape
from urllib.parse import parse_qs, urlsplit
from uuid import uuid4

import httpx

from ticketing_common.testing import wait_until

from .conftest import PASSWORD, Browser, field_error, input_value


async def test_sign_up_errors_are_shown_next_to_their_fields_with_the_email_kept(
    browser: Browser,
) -> None:
    page = await browser.submit(
        "/signup", {"email": "not an email", "password": "short"}, form_page="/signup"
    )
    assert page.status_code == 400
    assert field_error(page.text, "email") == "Email must be valid"
    assert "between 8 and 128" in (field_error(page.text, "password") or "")
    assert input_value(page.text, "email") == "not an email"


async def test_signing_up_twice_with_one_email_says_it_is_taken(browser: Browser) -> None:
    email = f"{uuid4().hex}@example.com"
    await browser.sign_up(email)
    await browser.submit("/signout", {}, form_page="/")
    page = await browser.submit(
        "/signup", {"email": email, "password": PASSWORD}, form_page="/signup"
    )
    assert page.status_code == 409
    assert input_value(page.text, "email") == email
    assert field_error(page.text, "email") is not None or 'class="alert"' in page.text


async def test_wrong_credentials_are_shown_above_the_form_with_the_email_kept(
    browser: Browser,
) -> None:
    email = f"{uuid4().hex}@example.com"
    page = await browser.submit("/signin", {"email": email, "password": "wrong password"})
    assert page.status_code == 401
    assert "Invalid credentials" in page.text
    assert input_value(page.text, "email") == email


async def test_selling_with_bad_input_shows_each_error_at_its_field_and_lists_nothing(
    browser: Browser,
) -> None:
    await browser.sign_up(f"{uuid4().hex}@example.com")
    page = await browser.submit(
        "/tickets/new", {"title": "   ", "price": "12.345"}, form_page="/tickets/new"
    )
    assert page.status_code == 400
    assert field_error(page.text, "title") is not None
    assert field_error(page.text, "price") is not None
    assert input_value(page.text, "price") == "12.345"
    negative = await browser.submit(
        "/tickets/new", {"title": "Opera", "price": "-5"}, form_page="/tickets/new"
    )
    assert negative.status_code == 400
    assert field_error(negative.text, "title") is None
    assert field_error(negative.text, "price") is not None
    assert input_value(negative.text, "title") == "Opera"
    assert 'class="ticket-card"' not in (await browser.get("/")).text


async def test_selling_with_a_control_character_in_the_title_shows_it_and_lists_nothing(
    browser: Browser,
) -> None:
    await browser.sign_up(f"{uuid4().hex}@example.com")
    page = await browser.submit(
        "/tickets/new", {"title": "Con\x00cert", "price": "10"}, form_page="/tickets/new"
    )
    assert page.status_code == 400
    assert field_error(page.text, "title") == "Must not contain control characters"
    assert field_error(page.text, "price") is None
    assert input_value(page.text, "price") == "10"
    assert 'class="ticket-card"' not in (await browser.get("/")).text


async def test_signing_up_with_a_control_character_in_the_password_shows_it(
    browser: Browser,
) -> None:
    email = f"{uuid4().hex}@example.com"
    page = await browser.submit(
        "/signup", {"email": email, "password": "correct\x00horse"}, form_page="/signup"
    )
    assert page.status_code == 400
    assert field_error(page.text, "password") == "Must not contain control characters"
    assert input_value(page.text, "email") == email


async def test_protected_pages_send_a_signed_out_visitor_to_sign_in_and_back(
    browser: Browser,
) -> None:
    for path in ("/tickets/new", "/orders", f"/orders/{uuid4()}"):
        response = await browser.get(path)
        assert response.status_code == 303, path
        location = urlsplit(response.headers["location"])
        assert location.path == "/signin"
        assert parse_qs(location.query)["next"] == [path]
    sign_in_page = await browser.get("/signin?next=/tickets/new")
    assert 'name="next" value="/tickets/new"' in sign_in_page.text

    email = f"{uuid4().hex}@example.com"
    await browser.sign_up(email)
    await browser.submit("/signout", {}, form_page="/")
    response = await browser.submit(
        "/signin", {"email": email, "password": PASSWORD, "next": "/tickets/new"}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/tickets/new"


async def test_sign_in_never_redirects_to_another_site(browser: Browser) -> None:
    email = f"{uuid4().hex}@example.com"
    await browser.sign_up(email)
    for target in ("//evil.example/", "https://evil.example/", "/\\evil.example", "orders"):
        response = await browser.submit(
            "/signin", {"email": email, "password": PASSWORD, "next": target}
        )
        assert response.status_code == 303, target
        assert response.headers["location"] == "/", target


async def test_a_signed_out_purchase_goes_to_sign_in_and_creates_nothing(
    browser: Browser, make_browser: Callable[[], Browser]
) -> None:
    await browser.sign_up(f"{uuid4().hex}@example.com")
    ticket_id = await browser.sell("Ballet", "30")
    visitor = make_browser()
    detail = await visitor.get(f"/tickets/{ticket_id}")
    assert "Sign in to purchase" in detail.text
    assert "Purchase</button>" not in detail.text
    response = await visitor.submit(f"/tickets/{ticket_id}/purchase", {})
    assert response.status_code == 303
    assert response.headers["location"] == f"/signin?next=%2Ftickets%2F{ticket_id}"
    # Nobody ordered it: it is still for sale.
    assert f'data-ticket-id="{ticket_id}"' in (await visitor.get("/")).text


async def test_purchasing_opens_the_order_page_with_the_time_left_and_the_test_cards(
    browser: Browser,
) -> None:
    await browser.sign_up(f"{uuid4().hex}@example.com")
    ticket_id = await browser.sell("Opera", "45")
    await browser.submit("/signout", {}, form_page="/")
    await browser.sign_up(f"{uuid4().hex}@example.com")
    location = await browser.purchase(ticket_id)
    assert location.startswith("/orders/")
    order_page = await browser.get(location)
    assert order_page.status_code == 200
    assert "Order for Opera" in order_page.text
    assert "$45.00" in order_page.text
    assert "data-countdown" in order_page.text
    assert ">14:5" in order_page.text or ">15:00<" in order_page.text  # 15 min window
    assert 'value="tok_visa"' in order_page.text
    assert "Visa 4242 4242 4242 4242 (succeeds)" in order_page.text
    assert 'value="tok_chargeDeclined"' in order_page.text
    assert "Visa 4000 0000 0000 0002 (declined)" in order_page.text
    assert "js.stripe.com" not in order_page.text  # no key configured: nothing external
    orders = await browser.get("/orders")
    assert "Opera" in orders.text
    assert "Awaiting payment" in orders.text
    again = await browser.submit(
        f"/tickets/{ticket_id}/purchase", {}, form_page=f"/tickets/{ticket_id}"
    )
    assert again.status_code == 409
    assert "already reserved" in again.text


async def test_a_buyer_at_the_hold_cap_is_told_why_on_the_ticket_page(
    browser: Browser, make_browser: Callable[[], Browser]
) -> None:
    await browser.sign_up(f"{uuid4().hex}@example.com")
    cap = 4  # orders' default MAX_OPEN_ORDERS_PER_USER
    listed = [await browser.sell(f"Recital {number}", "12") for number in range(cap + 1)]
    buyer = make_browser()
    await buyer.sign_up(f"{uuid4().hex}@example.com")
    for ticket_id in listed[:cap]:
        await buyer.purchase(ticket_id)
    last = f"/tickets/{listed[cap]}"

    async def refused() -> httpx.Response | None:
        response = await buyer.submit(f"{last}/purchase", {}, form_page=last)
        return response if response.status_code != 404 else None  # orders learning of it

    page = await wait_until(refused, timeout=30, interval=0.2)

    assert page.status_code == 429
    assert (
        "You already hold 4 tickets. Pay for or cancel one before reserving another."
        in unescape(page.text)
    )
    assert "Purchase</button>" in page.text  # the form stays, for after a hold ends
