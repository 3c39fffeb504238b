"""The web app as its spec builds it: static assets by name, the components its pages
use, and readiness (the app itself, once the revocations are replayed; not the broker).

No API is called here: the gateway is an address nothing listens on.
"""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest

from ticketing_common.embedded import NatsServer, free_port
from ticketing_common.events.bus import EventBus
from ticketing_common.revocations import RevocationFollower
from ticketing_common.testing import revoke_session, serve_app, signed_in_cookie, wait_until
from ticketing_web.api_client import MarketplaceApi
from ticketing_web.app import SPEC, create_app
from ticketing_web.settings import Settings

SELL_FORM = "/tickets/new"


def web_settings(nats_url: str, namespace: str) -> Settings:
    return Settings(
        GATEWAY_URL=f"http://127.0.0.1:{free_port()}",
        NATS_URL=nats_url,
        NATS_NAMESPACE=namespace,
        ENVIRONMENT="test",
    )


def test_the_spec_routes_every_other_path_to_the_pages_and_serves_no_api_docs() -> None:
    assert SPEC.is_catch_all
    assert SPEC.follows_revocations
    assert not SPEC.needs_database
    assert not SPEC.uses_redis
    assert not SPEC.bus_is_required
    assert SPEC.stripe_publishable
    assert not SPEC.stripe_secret


async def test_static_assets_are_found_by_name_and_served(
    nats_url: str, namespace: str, bus: EventBus
) -> None:
    app = create_app(web_settings(nats_url, namespace))
    async with serve_app(app) as served, served.client() as client:
        path = served.app.url_path_for("static", path="site.css")
        response = await client.get(str(path))
        docs = await client.get("/docs")
    assert path == "/static/site.css"
    assert response.status_code == 200
    assert "text/css" in response.headers["content-type"]
    assert docs.status_code == 404
    assert docs.headers["content-type"].startswith("text/html")  # a page, not the API docs


async def test_the_pages_reach_the_api_client_the_app_opened(
    nats_url: str, namespace: str, bus: EventBus
) -> None:
    app = create_app(web_settings(nats_url, namespace))
    async with serve_app(app) as served:
        assert served.component(Settings).SERVICE_NAME == "web"  # the spec's name
        api = served.component(MarketplaceApi)
        assert not api.client.is_closed
        # A page that calls the API answers through it: the gateway is unreachable.
        async with served.client() as client:
            page = await client.get("/")
        assert page.status_code == 502
    with pytest.raises(RuntimeError):
        api.client  # noqa: B018 - closed with the app


async def test_a_service_started_after_a_revocation_refuses_it_from_its_first_page(
    nats_url: str, namespace: str, bus: EventBus
) -> None:
    settings = web_settings(nats_url, namespace)
    revoked_session = uuid4()
    await revoke_session(bus, revoked_session)
    revoked = signed_in_cookie(settings, session_id=revoked_session)
    kept = signed_in_cookie(settings)
    async with (
        serve_app(create_app(settings)) as served,
        served.client(cookies=revoked) as revoked_client,
        served.client(cookies=kept) as kept_client,
    ):
        assert served.component(RevocationFollower).is_revoked(revoked_session)
        assert (await revoked_client.get(SELL_FORM)).status_code == 303  # to sign in
        assert (await kept_client.get(SELL_FORM)).status_code == 200
        assert (await revoked_client.get("/readyz")).status_code == 200


async def test_a_broker_outage_after_start_up_leaves_the_pages_ready_and_refusing(
    own_nats: NatsServer, namespace: str
) -> None:
    settings = web_settings(own_nats.url, namespace)
    revoked_session = uuid4()
    publisher = await EventBus.from_settings(settings).connect()
    try:
        await revoke_session(publisher, revoked_session)
    finally:
        await publisher.close()
    revoked = signed_in_cookie(settings, session_id=revoked_session)
    async with (
        serve_app(create_app(settings)) as served,
        served.client(cookies=revoked) as client,
    ):
        assert (await client.get("/readyz")).status_code == 200
        await asyncio.to_thread(own_nats.stop)
        await wait_until(lambda: not served.component(EventBus).connected)

        ready = await client.get("/readyz")
        page = await client.get(SELL_FORM)
    assert ready.status_code == 200, ready.text
    assert page.status_code == 303  # the revocation it knows is still refused
