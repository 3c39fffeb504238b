"""A revoked session is refused by every service that verifies sessions, and only it.

Each service is served for real on its own database and the test's NATS namespace.
The first tests publish the revocation on the bus as auth does; the last ones sign
out through auth itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from uuid import UUID, uuid4

import httpx
import pytest

import ticketing_auth.app
import ticketing_auth.settings
import ticketing_orders.app
import ticketing_orders.settings
import ticketing_payments.app
import ticketing_payments.settings
import ticketing_tickets.app
import ticketing_tickets.settings
import ticketing_web.app
import ticketing_web.settings
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import SessionRevoked
from ticketing_common.session import COOKIE_NAME
from ticketing_common.testing import (
    MakeMigratedDatabase,
    ServedApp,
    published,
    revoke_session,
    serve_app,
    signed_in_cookie,
    wait_until,
)

# Whether a request in a session was accepted as signed in, per service.
Probe = Callable[[httpx.AsyncClient], Awaitable[bool]]


async def tickets_accepts(client: httpx.AsyncClient) -> bool:
    response = await client.post("/api/tickets", json={"title": "Concert", "price": "10"})
    assert response.status_code in {201, 401}, response.text
    return response.status_code == 201


async def orders_accepts(client: httpx.AsyncClient) -> bool:
    response = await client.get("/api/orders")
    assert response.status_code in {200, 401}, response.text
    return response.status_code == 200


async def payments_accepts(client: httpx.AsyncClient) -> bool:
    # An order payments never heard of: 404 to a signed-in buyer, 401 to anyone else.
    body = {"orderId": str(uuid4()), "token": "tok_visa"}
    response = await client.post("/api/payments", json=body)
    assert response.status_code in {404, 401}, response.text
    return response.status_code == 404


async def web_accepts(client: httpx.AsyncClient) -> bool:
    # The sell form for a signed-in visitor, the sign-in page for anyone else.
    response = await client.get("/tickets/new")
    assert response.status_code in {200, 303}, response.text
    return response.status_code == 200


@pytest.fixture
def web_settings(
    tickets_settings: ticketing_tickets.settings.Settings,
) -> ticketing_web.settings.Settings:
    return ticketing_web.settings.Settings(
        GATEWAY_URL="http://127.0.0.1:9",  # the pages probed call no API
        NATS_URL=tickets_settings.NATS_URL,
        NATS_NAMESPACE=tickets_settings.NATS_NAMESPACE,
        ENVIRONMENT="test",
    )


@pytest.fixture
async def services(
    tickets_app: ServedApp,
    orders_app: ServedApp,
    payments_settings: ticketing_payments.settings.Settings,
    web_settings: ticketing_web.settings.Settings,
    bus: EventBus,
) -> AsyncIterator[dict[str, tuple[ServedApp, Probe]]]:
    # No wait for an order's replica: the probe's order never comes.
    payments = ticketing_payments.app.create_app(
        payments_settings.model_copy(update={"ORDER_REPLICA_WAIT_SECONDS": 0})
    )
    async with (
        serve_app(payments) as payments_app,
        serve_app(ticketing_web.app.create_app(web_settings)) as web_app,
    ):
        yield {
            "tickets": (tickets_app, tickets_accepts),
            "orders": (orders_app, orders_accepts),
            "payments": (payments_app, payments_accepts),
            "web": (web_app, web_accepts),
        }


async def test_a_revoked_session_is_refused_by_every_service_and_only_it(
    services: dict[str, tuple[ServedApp, Probe]],
    tickets_settings: ticketing_tickets.settings.Settings,
    bus: EventBus,
) -> None:
    revoked_session = uuid4()
    revoked = signed_in_cookie(tickets_settings, session_id=revoked_session)
    kept = signed_in_cookie(tickets_settings)
    async with AsyncExitStack() as stack:
        clients = {
            name: (
                await stack.enter_async_context(served.client(cookies=revoked)),
                await stack.enter_async_context(served.client(cookies=kept)),
                probe,
            )
            for name, (served, probe) in services.items()
        }
        for name, (revoked_client, kept_client, probe) in clients.items():
            assert await probe(revoked_client), name
            assert await probe(kept_client), name

        await revoke_session(bus, revoked_session)

        for name, (revoked_client, kept_client, probe) in clients.items():

            async def refused(client: httpx.AsyncClient = revoked_client, p: Probe = probe) -> bool:
                return not await p(client)

            await wait_until(refused)
            assert await probe(kept_client), f"{name} refused an unrelated session"


async def test_a_service_started_after_the_revocation_refuses_it_once_ready(
    tickets_settings: ticketing_tickets.settings.Settings, bus: EventBus
) -> None:
    revoked_session: UUID = uuid4()
    revoked = signed_in_cookie(tickets_settings, session_id=revoked_session)
    kept = signed_in_cookie(tickets_settings)
    async with (
        serve_app(ticketing_tickets.app.create_app(tickets_settings)) as before,
        before.client(cookies=revoked) as client,
    ):
        assert await tickets_accepts(client)
    await revoke_session(bus, revoked_session)

    # A restart: a new process, which learns of the revocation only by replaying it.
    async with (
        serve_app(ticketing_tickets.app.create_app(tickets_settings)) as after,
        after.client(cookies=revoked) as revoked_client,
        after.client(cookies=kept) as kept_client,
    ):
        # Its first answer is already the right one: it listens only once replayed.
        assert not await tickets_accepts(revoked_client)
        assert (await revoked_client.get("/readyz")).status_code == 200
        assert await tickets_accepts(kept_client)


# End to end: signing out through auth ends the session everywhere.

# A sign-out is refused everywhere well within this (the measured delay is tens of
# milliseconds; docs/benchmarks.md); it is a bound for a shared test machine.
REVOCATION_BOUND_SECONDS = 10.0
PASSWORD = "correct horse battery"


@pytest.fixture
async def auth_app(
    make_migrated_database: MakeMigratedDatabase,
    nats_url: str,
    redis_url: str,
    namespace: str,
    bus: EventBus,
) -> AsyncIterator[ServedApp]:
    url = await make_migrated_database("ticketing_auth")
    settings = ticketing_auth.settings.Settings(
        DATABASE_URL=url,
        NATS_URL=nats_url,
        NATS_NAMESPACE=namespace,
        REDIS_URL=redis_url,
        ENVIRONMENT="test",
        SERVICE_NAME="auth",
    )
    async with serve_app(ticketing_auth.app.create_app(settings)) as served:
        yield served


async def signed_up(auth_app: ServedApp) -> dict[str, str]:
    """Sign a new user up through auth; the session cookie it set."""
    async with auth_app.client() as auth:
        email = f"buyer-{uuid4().hex[:8]}@example.com"
        response = await auth.post("/api/users/signup", json={"email": email, "password": PASSWORD})
        assert response.status_code == 201, response.text
        return {COOKIE_NAME: response.cookies[COOKIE_NAME]}


async def test_signing_out_through_auth_ends_the_session_in_every_service(
    services: dict[str, tuple[ServedApp, Probe]],
    auth_app: ServedApp,
) -> None:
    signed_out = await signed_up(auth_app)
    kept = await signed_up(auth_app)
    async with AsyncExitStack() as stack:
        clients = {
            name: (
                await stack.enter_async_context(served.client(cookies=signed_out)),
                await stack.enter_async_context(served.client(cookies=kept)),
                probe,
            )
            for name, (served, probe) in services.items()
        }
        for name, (out_client, kept_client, probe) in clients.items():
            assert await probe(out_client), name
            assert await probe(kept_client), name

        async with auth_app.client(cookies=signed_out) as auth:
            assert (await auth.post("/api/users/signout")).status_code == 200

        for name, (out_client, kept_client, probe) in clients.items():

            async def refused(client: httpx.AsyncClient = out_client, p: Probe = probe) -> bool:
                return not await p(client)

            await wait_until(refused, timeout=REVOCATION_BOUND_SECONDS)
            assert await probe(kept_client), f"{name} refused a session still signed in"
        async with auth_app.client(cookies=signed_out) as auth:
            current = await auth.get("/api/users/currentuser")
            assert current.json() == {"currentUser": None}


async def test_a_service_down_during_the_sign_out_refuses_the_session_once_back(
    auth_app: ServedApp, orders_settings: ticketing_orders.settings.Settings, bus: EventBus
) -> None:
    signed_out = await signed_up(auth_app)
    async with (
        serve_app(ticketing_orders.app.create_app(orders_settings)) as orders,
        orders.client(cookies=signed_out) as client,
    ):
        assert await orders_accepts(client)
    # Orders is down while the user signs out: it misses the live event.
    async with auth_app.client(cookies=signed_out) as auth:
        assert (await auth.post("/api/users/signout")).status_code == 200
    await published(bus, SessionRevoked, 1)  # auth's relay has published it

    async with (
        serve_app(ticketing_orders.app.create_app(orders_settings)) as orders,
        orders.client(cookies=signed_out) as client,
    ):
        assert not await orders_accepts(client)  # its very first answer
