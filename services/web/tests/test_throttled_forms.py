"""A refusal for too many attempts (429) is shown on the form that made it, with the
visitor's input kept and the API's Retry-After: sign-up, sign-in and paying, against
the real services run with low rate limits."""

from __future__ import annotations

from collections.abc import Callable
from uuid import uuid4

import pytest

from ticketing_common.ratelimit import VOUCHED_CLIENT_HEADER

from .conftest import PASSWORD, Browser, Stack, input_value

HOUR = 3600


@pytest.fixture
def api_settings() -> dict[str, dict[str, object]]:
    return {
        "auth": {"SIGNUP_RATE_PER_CLIENT": "2/hour", "SIGNIN_RATE_PER_EMAIL": "1/hour"},
        "payments": {"PAYMENT_RATE_PER_ORDER": "1/hour"},
        # As behind the gateway: the visitor's address is the X-Forwarded-For it sends.
        "web": {"TRUST_PROXY_HEADERS": True},
    }


@pytest.fixture
def with_payments() -> bool:
    return True


async def test_too_many_sign_ups_are_shown_on_the_sign_up_form(browser: Browser) -> None:
    await browser.sign_up(f"{uuid4().hex}@example.com")
    await browser.submit("/signout", {}, form_page="/")
    await browser.sign_up(f"{uuid4().hex}@example.com")
    await browser.submit("/signout", {}, form_page="/")
    email = f"{uuid4().hex}@example.com"

    page = await browser.submit(
        "/signup", {"email": email, "password": PASSWORD}, form_page="/signup"
    )

    assert page.status_code == 429
    assert 1 <= int(page.headers["Retry-After"]) <= HOUR  # relayed from auth
    assert "Too many sign-ups, try again later" in page.text
    assert input_value(page.text, "email") == email
    assert "session" not in browser.http.cookies


async def test_too_many_sign_ins_are_shown_on_the_sign_in_form(browser: Browser) -> None:
    email = f"{uuid4().hex}@example.com"
    await browser.sign_up(email)
    await browser.submit("/signout", {}, form_page="/")
    first = await browser.submit("/signin", {"email": email, "password": "wrong password"})

    page = await browser.submit("/signin", {"email": email, "password": PASSWORD})

    assert first.status_code == 401
    assert page.status_code == 429
    assert 1 <= int(page.headers["Retry-After"]) <= HOUR
    assert "Too many sign-in attempts, try again later" in page.text
    assert input_value(page.text, "email") == email


async def test_too_many_payment_attempts_are_shown_on_the_order_page(browser: Browser) -> None:
    await browser.sign_up(f"{uuid4().hex}@example.com")
    ticket_id = await browser.sell("Ballet", "30")
    await browser.submit("/signout", {}, form_page="/")
    await browser.sign_up(f"{uuid4().hex}@example.com")
    order_page = await browser.purchase(ticket_id)

    declined = await browser.submit(
        f"{order_page}/pay", {"token": "tok_chargeDeclined"}, form_page=order_page
    )
    page = await browser.submit(f"{order_page}/pay", {"token": "tok_visa"}, form_page=order_page)

    assert declined.status_code == 402
    assert page.status_code == 429
    assert 1 <= int(page.headers["Retry-After"]) <= HOUR
    assert "Too many payment attempts, try again later" in page.text
    assert "Order for Ballet" in page.text  # the order page, its form still there
    assert 'value="tok_visa"' in page.text


async def test_visitors_of_the_web_client_are_counted_apart_not_as_the_web_server(
    stack: Stack, make_browser: Callable[[], Browser]
) -> None:
    """The gateway names the web server as the caller; the web client vouches for its
    visitor's address (signed), so one visitor over the limit blocks nobody else."""

    async def sign_up(visitor: Browser, address: str) -> int:
        page = await visitor.submit(
            "/signup",
            {"email": f"{uuid4().hex}@example.com", "password": PASSWORD},
            form_page="/signup",
            **{"X-Forwarded-For": address},
        )
        visitor.http.cookies.clear()
        return page.status_code

    busy, other = make_browser(), make_browser()
    busy_statuses = [await sign_up(busy, "203.0.113.10") for _ in range(3)]
    other_status = await sign_up(other, "203.0.113.20")

    assert busy_statuses == [303, 303, 429]
    assert other_status == 303
    assert all(VOUCHED_CLIENT_HEADER in headers for headers in stack.seen.requests)
