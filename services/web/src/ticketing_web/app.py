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
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ticketing_common.spec import CATCH_ALL, Parts, ServiceContext, ServiceSpec
from ticketing_web.api_client import MarketplaceApi
from ticketing_web.rendering import STATIC_DIR, install_html_error_handlers
from ticketing_web.renewal import SessionRenewal
from ticketing_web.routes import router
from ticketing_web.settings import Settings

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
