"""The web client's application: ``uvicorn --factory ticketing_web.app:create_app``.

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

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ticketing_common.app import ServiceRuntime, create_service_app
from ticketing_common.events.bus import EventBus
from ticketing_common.revocations import RevocationFollower
from ticketing_web.api_client import MarketplaceApi
from ticketing_web.rendering import STATIC_DIR, install_html_error_handlers
from ticketing_web.renewal import SessionRenewal
from ticketing_web.routes import router
from ticketing_web.settings import Settings

TITLE = "Ticketing web"
STRIPE_ORIGIN = "https://js.stripe.com"


def content_security_policy(settings: Settings) -> str:
    """Scripts and frames from this site only, and from Stripe.js when a key is set."""
    if settings.STRIPE_PUBLISHABLE_KEY:
        # What Stripe.js needs: its script, its card frames, and its API for tokens.
        scripts, frames = f"'self' {STRIPE_ORIGIN}", f"{STRIPE_ORIGIN} https://hooks.stripe.com"
        connect = "'self' https://api.stripe.com"
    else:
        scripts, frames, connect = "'self'", "'none'", "'self'"
    return (
        f"default-src 'self'; script-src {scripts}; frame-src {frames}; "
        f"connect-src {connect}; img-src 'self' data:; style-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    )


class SecurityHeaders:
    """The browser's protections on every response (unless the response set its own).

    A plain ASGI middleware, like the shared ``RequestContext``: Starlette's
    ``BaseHTTPMiddleware`` ends a response normally when the app fails in the middle
    of its body, so a half-sent page would reach the browser as if it were whole.
    """

    def __init__(self, app: ASGIApp, policy: str) -> None:
        self.app = app
        self.headers = {
            "Content-Security-Policy": policy,
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
            # Same-origin referrers keep the CSRF check's Referer fallback working,
            # without telling other sites which page linked to them.
            "Referrer-Policy": "same-origin",
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    api = MarketplaceApi(settings)
    bus = EventBus.from_settings(settings)

    async def connect_bus() -> None:
        # A start-up hook rather than the runtime's bus, whose outage would make it unready.
        await bus.connect()

    runtime = ServiceRuntime(
        on_startup=[api.open, connect_bus],
        on_shutdown=[api.close, bus.close],
        revocations=RevocationFollower(bus, settings),
    )
    app = create_service_app(
        settings=settings,
        title=TITLE,
        routers=[router],
        runtime=runtime,
        middleware=[
            Middleware(SecurityHeaders, policy=content_security_policy(settings)),
            Middleware(SessionRenewal, api=api, settings=settings),
        ],
        error_handlers=install_html_error_handlers,
    )
    app.state.api = api
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
