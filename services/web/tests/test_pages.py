"""Pages render for signed-out and signed-in visitors with the right header, money reads
as money, unknown things are 404 pages, and a failing API is a friendly page (SPEC §6)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode
from uuid import uuid4

import httpx
from fastapi import Request

from ticketing_common.embedded import free_port
from ticketing_common.events.bus import EventBus
from ticketing_common.testing import serve_app
from ticketing_web.app import create_app
from ticketing_web.settings import Settings

from .conftest import Browser, Stack, header_links

SIGNED_OUT = ["Sign up", "Sign in"]
SIGNED_IN = ["Sell tickets", "My listings", "My orders", "Check in", "Sign out"]


async def test_pages_for_a_signed_out_visitor_offer_sign_up_and_sign_in(browser: Browser) -> None:
    for path in ("/", "/signup", "/signin"):
        page = await browser.get(path)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert header_links(page.text) == SIGNED_OUT


async def test_signing_up_signs_in_and_the_header_offers_selling_orders_and_sign_out(
    browser: Browser,
) -> None:
    response = await browser.sign_up(f"{uuid4().hex}@example.com")
    assert response.headers["location"] == "/"
    assert "session=" in response.headers["set-cookie"]
    for path in ("/", "/tickets/new", "/orders"):
        page = await browser.get(path)
        assert page.status_code == 200, path
        assert header_links(page.text) == SIGNED_IN


async def test_signing_out_clears_the_session(browser: Browser) -> None:
    await browser.sign_up(f"{uuid4().hex}@example.com")
    response = await browser.submit("/signout", {}, form_page="/")
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    assert header_links((await browser.get("/")).text) == SIGNED_OUT
    assert (await browser.get("/orders")).status_code == 303


async def test_signing_in_again_restores_the_session(browser: Browser) -> None:
    email = f"{uuid4().hex}@example.com"
    await browser.sign_up(email)
    await browser.submit("/signout", {}, form_page="/")
    response = await browser.submit(
        "/signin", {"email": email, "password": "correct horse battery"}
    )
    assert response.status_code == 303
    assert header_links((await browser.get("/")).text) == SIGNED_IN


async def test_one_visitors_session_never_reaches_another(
    browser: Browser, make_browser: Callable[[], Browser]
) -> None:
    await browser.sign_up(f"{uuid4().hex}@example.com")
    stranger = make_browser()
    assert header_links((await stranger.get("/")).text) == SIGNED_OUT
    assert (await stranger.get("/orders")).status_code == 303


async def test_a_listed_ticket_shows_on_the_landing_page_with_its_price_as_money(
    browser: Browser,
) -> None:
    await browser.sign_up(f"{uuid4().hex}@example.com")
    ticket_id = await browser.sell("Jazz night", "1234.5")
    landing = (await browser.get("/")).text
    assert "Jazz night" in landing
    assert "$1,234.50" in landing
    detail = await browser.get(f"/tickets/{ticket_id}")
    assert detail.status_code == 200
    assert "$1,234.50" in detail.text
    assert "This is your ticket" in detail.text  # a seller is not offered to buy it
    assert "Purchase</button>" not in detail.text


async def test_the_landing_page_links_the_next_and_previous_pages(
    stack: Stack, browser: Browser
) -> None:
    await browser.sign_up(f"{uuid4().hex}@example.com")
    for number in range(21):
        await browser.sell(f"Show {number:02d}", "10")
    first = (await browser.get("/")).text
    assert first.count('class="ticket-card"') == 20
    assert 'href="/?offset=20"' in first
    assert 'rel="prev"' not in first
    second = (await browser.get("/?offset=20")).text
    assert second.count('class="ticket-card"') == 1
    assert "Show 00" in second  # newest first: the oldest is on the last page
    assert 'href="/?offset=0"' in second


async def test_unknown_paths_tickets_and_orders_are_404_pages(browser: Browser) -> None:
    await browser.sign_up(f"{uuid4().hex}@example.com")
    for path in (
        "/no/such/page",
        f"/tickets/{uuid4()}",
        "/tickets/not-an-id",
        f"/orders/{uuid4()}",
        "/orders/not-an-id",
    ):
        page = await browser.get(path)
        assert page.status_code == 404, path
        assert page.headers["content-type"].startswith("text/html"), path
        assert "Page not found" in page.text, path
        assert header_links(page.text) == SIGNED_IN, path


async def test_a_bad_page_number_is_a_400_page_not_a_500(browser: Browser) -> None:
    page = await browser.get("/?offset=minus-one")
    assert page.status_code == 400
    assert "Bad request" in page.text


async def test_an_unreachable_gateway_is_a_friendly_error_page_without_internals(
    nats_url: str, namespace: str, bus: EventBus
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    app = create_app(
        Settings(
            GATEWAY_URL=nowhere, NATS_URL=nats_url, NATS_NAMESPACE=namespace, ENVIRONMENT="test"
        )
    )
    async with serve_app(app) as served, httpx.AsyncClient(base_url=served.url) as client:
        page = await client.get("/")
        ready = await client.get("/readyz")
    assert page.status_code == 502
    assert "Something went wrong on our side" in page.text
    for internal in ("ConnectError", "Traceback", "127.0.0.1", "httpx"):
        assert internal not in page.text
    # The web app itself can serve (its error pages included): it stays ready.
    assert ready.status_code == 200


async def test_an_unexpected_error_is_a_500_page_and_the_connection_stays_usable(
    nats_url: str, namespace: str, bus: EventBus
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    app = create_app(
        Settings(
            GATEWAY_URL=nowhere, NATS_URL=nats_url, NATS_NAMESPACE=namespace, ENVIRONMENT="test"
        )
    )

    async def boom() -> None:
        raise RuntimeError("secret internals")

    async def port(request: Request) -> dict[str, int]:
        assert request.client is not None
        return {"port": request.client.port}

    app.add_api_route("/boom", boom)
    app.add_api_route("/port", port)
    one_connection = httpx.Limits(max_connections=1)
    async with (
        serve_app(app) as served,
        httpx.AsyncClient(base_url=served.url, limits=one_connection) as client,
    ):
        before = await client.get("/port")
        page = await client.get("/boom")
        after = await client.get("/port")
    assert page.status_code == 500
    assert page.headers["content-type"].startswith("text/html")
    assert "Something went wrong on our side" in page.text
    assert "secret" not in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert after.status_code == 200
    # The same client port: the request after the 500 went over the same connection.
    assert after.json() == before.json()


async def test_a_request_id_that_is_no_token_neither_breaks_the_page_nor_reaches_the_api(
    stack: Stack, browser: Browser
) -> None:
    # The id is forwarded to the APIs: a non-ASCII one would fail the outgoing request.
    page = await browser.http.get("/", headers={b"X-Request-ID": "café".encode()})
    assert page.status_code == 200
    forwarded = stack.seen.requests[-1]["x-request-id"]
    assert forwarded == page.headers["x-request-id"]
    assert forwarded.isascii()


async def test_the_api_receives_the_visitors_address_and_no_session_of_a_signed_out_visitor(
    stack: Stack, browser: Browser
) -> None:
    await browser.get("/")
    anonymous = stack.seen.requests[-1]
    assert anonymous["x-forwarded-for"] == "127.0.0.1"
    assert "cookie" not in anonymous
    await browser.sign_up(f"{uuid4().hex}@example.com")
    await browser.get("/orders")
    assert "session=" in stack.seen.requests[-1]["cookie"]


async def test_static_assets_are_served_by_the_service(browser: Browser) -> None:
    for asset, kind in (("/static/site.css", "text/css"), ("/static/countdown.js", "javascript")):
        response = await browser.get(asset)
        assert response.status_code == 200
        assert kind in response.headers["content-type"]


async def test_every_response_carries_the_browsers_protections(browser: Browser) -> None:
    for path in ("/", "/tickets/not-an-id", "/static/site.css", "/orders"):
        response = await browser.get(path)
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["x-frame-options"] == "DENY", path
        assert response.headers["referrer-policy"] == "same-origin", path
        policy = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy, path


async def test_pages_for_signed_in_visitors_send_others_to_sign_in_and_back(
    browser: Browser,
) -> None:
    order = f"/orders/{uuid4()}"
    # A page comes back to itself; a form's action to the page the form is on.
    for method, path, back_to in (
        ("GET", "/tickets/new", "/tickets/new"),
        ("GET", "/orders?paid=1", "/orders?paid=1"),
        ("GET", order, order),
        ("POST", "/tickets/new", "/tickets/new"),
        ("POST", f"{order}/pay", order),
    ):
        if method == "GET":
            response = await browser.get(path)
        else:
            response = await browser.submit(path, {"title": "Opera", "price": "10"})
        assert response.status_code == 303, path
        assert response.headers["location"] == "/signin?" + urlencode({"next": back_to}), path
    # A malformed id names nothing, signed in or not.
    assert (await browser.get("/orders/not-an-id")).status_code == 404
