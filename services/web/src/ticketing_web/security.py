"""The browser's protections: the Content-Security-Policy, and the headers every
response carries unless it set its own (the check-in page, which uses the camera)."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ticketing_web.settings import Settings

STRIPE_ORIGIN = "https://js.stripe.com"


# No page may use the camera, microphone or location, except the check-in page's camera.
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=()"
SCANNER_PERMISSIONS_POLICY = "camera=(self), microphone=(), geolocation=()"


def content_security_policy(settings: Settings, *, scanner: bool = False) -> str:
    """Scripts and frames from this site only, and from Stripe.js when a key is set.

    The check-in page's QR scanner (vendored, served from here) decodes in a Web
    Worker it starts from a ``blob:`` URL of its own worker script: that page alone
    allows ``blob:`` workers; every other worker, and anything of another origin,
    stays refused. (The camera's stream reaches the video element as an object, which
    no fetch directive governs.)
    """
    if settings.STRIPE_PUBLISHABLE_KEY:
        # What Stripe.js needs: its script, its card frames, and its API for tokens.
        scripts, frames = f"'self' {STRIPE_ORIGIN}", f"{STRIPE_ORIGIN} https://hooks.stripe.com"
        connect = "'self' https://api.stripe.com"
    else:
        scripts, frames, connect = "'self'", "'none'", "'self'"
    # Without worker-src, workers fall back to script-src, as before the scanner.
    workers = "worker-src blob:; " if scanner else ""
    return (
        f"default-src 'self'; script-src {scripts}; frame-src {frames}; "
        f"connect-src {connect}; img-src 'self' data:; style-src 'self'; {workers}"
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
    )


def scanner_headers(settings: Settings) -> dict[str, str]:
    """The check-in page's own policies: the scanner's worker, and the camera."""
    return {
        "Content-Security-Policy": content_security_policy(settings, scanner=True),
        "Permissions-Policy": SCANNER_PERMISSIONS_POLICY,
    }


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
            "Permissions-Policy": PERMISSIONS_POLICY,
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
