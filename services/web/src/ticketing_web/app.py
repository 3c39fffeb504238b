"""The web client, described by its ``SPEC``: ``uvicorn --factory ticketing_web.app:create_app``.

Server-side rendered pages over the marketplace APIs, which it reaches through
the gateway with one shared HTTP client opened and closed with the app. It owns
no data, so it has no database, migrations or listeners; it reads the event bus
only to follow session revocations, since it verifies the session cookie itself
(the "signed in as" header, and which cookie it forwards).

Readiness is the app itself, once the revocations that can still matter have been
replayed: the web service needs nothing else of its own to serve a page, and the
gateway it calls is also what sends it traffic. Making readiness depend on the
gateway (or on the APIs behind it) would take every web replica out of service
whenever one API is down, replacing a page that says "try again" by the load
balancer's bare error. For the same reason a broker outage after start-up does not
make it unready: it keeps refusing the revocations it knows, and misses new ones
for no longer than a token lives.
"""

from __future__ import annotations

from fastapi.staticfiles import StaticFiles
from starlette.middleware import Middleware
from starlette.routing import Mount

from ticketing_common.spec import CATCH_ALL, Parts, ServiceContext, ServiceSpec
from ticketing_web.api_client import MarketplaceApi
from ticketing_web.rendering import STATIC_DIR, install_html_error_handlers
from ticketing_web.renewal import SessionRenewal
from ticketing_web.routes import router
from ticketing_web.security import SecurityHeaders, content_security_policy
from ticketing_web.settings import Settings


def parts(context: ServiceContext[Settings]) -> Parts:
    settings = context.settings
    api = MarketplaceApi(settings)
    return Parts(
        provides=[api],
        on_startup=[api.open],
        on_shutdown=[api.close],
        middleware=[
            Middleware(SecurityHeaders, policy=content_security_policy(settings)),
            Middleware(SessionRenewal, api=api, settings=settings),
        ],
    )


# Pages at every path no API prefix takes; the bus only for session revocations, so
# not required: connected at start-up, its later outage leaves the pages ready.
SPEC = ServiceSpec(
    name="web",
    package="ticketing_web",
    title="Ticketing web",
    settings=Settings,
    api_prefix=CATCH_ALL,
    routers=[router],
    mounts=[Mount("/static", StaticFiles(directory=STATIC_DIR), name="static")],
    parts=parts,
    error_handlers=install_html_error_handlers,
    bus_is_required=False,
    stripe_publishable=True,
    api_docs=False,
)
create_app = SPEC.create_app
