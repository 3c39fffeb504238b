"""Fixtures: the web client in front of the real auth, tickets and orders services
(and payments, for a module that sets ``with_payments``).

Each test gets fresh, migrated databases and a fresh NATS namespace (which also
names its rate-limit counters in Redis), from the shared harness
(``ticketing_common.testing.service``); the APIs are served over real HTTP with
their relays and listeners, behind a tiny path router that plays the gateway (each
spec's ``prefixes`` → that service). A module may override ``api_settings`` to give a
service other settings (e.g. low rate limits). The web service is
served with ``GATEWAY_URL`` pointing at that router, and tests drive it like a
browser without JavaScript: GET a form, post it back with the page's CSRF token.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from html import unescape
from typing import Any
from uuid import UUID

import httpx
import pytest
from fastapi import FastAPI, Request, Response

import ticketing_auth.app
import ticketing_orders.app
import ticketing_payments.app
import ticketing_tickets.app
from ticketing_common.spec import ServiceSpec
from ticketing_common.testing import ServedApp, ServiceHarness, serve_app, wait_until
from ticketing_web.app import SPEC as WEB

PASSWORD = "correct horse battery"
UNLIMITED_RATE = "100000/minute"
_HOP_BY_HOP = {"host", "content-length", "connection", "transfer-encoding", "keep-alive"}
_CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


@dataclass
class Seen:
    """What the APIs received through the router (to check what the web forwards)."""

    requests: list[httpx.Headers] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)


def path_router(upstreams: dict[str, str], seen: Seen) -> FastAPI:
    """A gateway in a few lines: the longest matching prefix's upstream gets the request."""
    router = FastAPI()
    client = httpx.AsyncClient(timeout=30)

    @router.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE"])
    async def proxy(request: Request, path: str) -> Response:
        target = next(
            (url for prefix, url in upstreams.items() if request.url.path.startswith(prefix)),
            None,
        )
        if target is None:
            return Response(status_code=404)
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP]
        seen.requests.append(httpx.Headers(headers))
        seen.paths.append(request.url.path)
        upstream = await client.request(
            request.method,
            target + request.url.path,
            params=request.query_params,
            headers=headers,
            content=await request.body(),
        )
        response = Response(upstream.content, status_code=upstream.status_code)
        for key, value in upstream.headers.multi_items():
            if key.lower() not in _HOP_BY_HOP and key.lower() != "content-encoding":
                response.headers.append(key, value)
        return response

    return router


@dataclass
class Stack:
    """The served web app and the APIs behind it."""

    web: ServedApp
    gateway: ServedApp
    seen: Seen

    def browser(self) -> Browser:
        return Browser(httpx.AsyncClient(base_url=self.web.url, timeout=30))


@dataclass
class Browser:
    """A cookie-keeping client that submits forms the way a browser without JS does."""

    http: httpx.AsyncClient

    async def get(self, path: str) -> httpx.Response:
        return await self.http.get(path)

    async def token(self, path: str = "/signin") -> str:
        page = await self.http.get(path)
        found = _CSRF.search(page.text)
        assert found is not None, f"no CSRF field on {path}: {page.text[:500]}"
        return unescape(found.group(1))

    async def submit(
        self, path: str, data: dict[str, str], *, form_page: str = "/signin", **headers: str
    ) -> httpx.Response:
        """POST ``data`` with the CSRF token of ``form_page`` (fetched first)."""
        fields = {"csrf_token": await self.token(form_page), **data}
        return await self.http.post(path, data=fields, headers=headers)

    async def sign_up(self, email: str, password: str = PASSWORD) -> httpx.Response:
        response = await self.submit(
            "/signup", {"email": email, "password": password}, form_page="/signup"
        )
        assert response.status_code == 303, response.text
        return response

    async def sell(self, title: str, price: str) -> UUID:
        response = await self.submit(
            "/tickets/new", {"title": title, "price": price}, form_page="/tickets/new"
        )
        assert response.status_code == 303, response.text
        return UUID(response.headers["location"].rsplit("/", 1)[-1])

    async def purchase(self, ticket_id: UUID) -> str:
        """Buy a ticket; retried until orders has heard of the ticket (an event away)."""
        page = f"/tickets/{ticket_id}"

        async def ordered() -> str | None:
            response = await self.submit(f"{page}/purchase", {}, form_page=page)
            return response.headers["location"] if response.status_code == 303 else None

        return await wait_until(ordered, timeout=30, interval=0.2)

    async def aclose(self) -> None:
        await self.http.aclose()


@pytest.fixture
def api_settings() -> dict[str, dict[str, object]]:
    """Settings of the services by name (``web`` too), over the defaults; a module may
    override it."""
    return {}


@pytest.fixture
def auth_settings() -> dict[str, object]:
    """Auth's settings beyond the defaults; a test overrides it by parametrizing it."""
    return {}


@pytest.fixture
def with_payments() -> bool:
    """Whether the payments service (and the Stripe sandbox) runs too; a module may say so."""
    return False


@pytest.fixture
async def stack(
    harness: ServiceHarness,
    api_settings: dict[str, dict[str, object]],
    with_payments: bool,
    auth_settings: dict[str, object],
) -> AsyncIterator[Stack]:
    """auth, tickets, orders, the router and the web app, all on the test's namespace."""
    apis: list[tuple[ServiceSpec[Any], dict[str, object]]] = [
        (ticketing_auth.app.SPEC, auth_settings),
        (ticketing_tickets.app.SPEC, {}),
        # Purchases are retried until orders has the ticket, all from one address.
        (
            ticketing_orders.app.SPEC,
            {"ORDER_RATE_PER_USER": UNLIMITED_RATE, "ORDER_RATE_PER_CLIENT": UNLIMITED_RATE},
        ),
    ]
    if with_payments:
        apis.append((ticketing_payments.app.SPEC, {}))
    seen = Seen()
    async with contextlib.AsyncExitStack() as served:
        routes: dict[str, str] = {}
        for spec, own in apis:
            assert spec.prefixes, spec.name
            overrides = {**api_settings.get(spec.name, {}), **own}
            url = (await served.enter_async_context(harness.serve(spec, **overrides))).url
            # Every prefix the gateway routes to it (orders: /api/orders and /api/checkins).
            routes.update(dict.fromkeys(spec.prefixes, url))
        async with (
            serve_app(path_router(routes, seen)) as gateway,
            harness.serve(WEB, GATEWAY_URL=gateway.url, **api_settings.get(WEB.name, {})) as web,
        ):
            yield Stack(web, gateway, seen)


@pytest.fixture
async def browser(stack: Stack) -> AsyncIterator[Browser]:
    visitor = stack.browser()
    try:
        yield visitor
    finally:
        await visitor.aclose()


@pytest.fixture
async def make_browser(stack: Stack) -> AsyncIterator[Callable[[], Browser]]:
    """More browsers (other visitors), each with its own cookies."""
    made: list[Browser] = []

    def make() -> Browser:
        made.append(stack.browser())
        return made[-1]

    yield make
    for visitor in made:
        await visitor.aclose()


def header_links(page: str) -> list[str]:
    """The account links of the page's header, in order."""
    nav = re.search(r'<nav aria-label="Account">(.*?)</nav>', page, re.S)
    assert nav is not None, page[:500]
    return re.findall(
        r">\s*(Sign up|Sign in|Sell tickets|My listings|My orders|Check in|Sign out)\s*<",
        nav.group(1),
    )


def field_error(page: str, name: str) -> str | None:
    """The error message shown next to form field ``name``, if any."""
    found = re.search(rf'data-field="{name}">([^<]*)<', page)
    return unescape(found.group(1)) if found else None


def input_value(page: str, name: str) -> str | None:
    found = re.search(rf'<input id="{name}" name="{name}" type="[^"]*" value="([^"]*)"', page)
    return unescape(found.group(1)) if found else None


def admission_code(page: str) -> str | None:
    """The e-ticket's code as the order page prints it, if it shows one."""
    found = re.search(r'<code class="admission-code">([^<]*)</code>', page)
    return unescape(found.group(1)) if found else None


async def buy_and_pay(seller: Browser, buyer: Browser, title: str, price: str) -> str:
    """``seller`` lists a ticket, ``buyer`` pays for it with the succeeding test card;
    the order's page once it is complete (payments' event reached orders)."""
    ticket_id = await seller.sell(title, price)
    order_page = await buyer.purchase(ticket_id)
    paid = await buyer.submit(f"{order_page}/pay", {"token": "tok_visa"}, form_page=order_page)
    assert paid.status_code == 303, paid.text

    async def complete() -> bool:
        return admission_code((await buyer.get(order_page)).text) is not None

    await wait_until(complete, timeout=30, interval=0.2)
    return order_page
