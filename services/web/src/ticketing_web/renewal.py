"""Keeping a visitor signed in while their session lives (docs/sessions.md).

A session token lives ``SESSION_TOKEN_TTL_SECONDS`` (minutes); auth renews it as long
as the session is live. Before a page is made, a token past half its life (or
already expired) is renewed through auth: the page's own API calls carry the new
token, and the browser gets auth's ``Set-Cookie`` with the page. A session auth
refuses to renew has ended (signed out, signed out everywhere, too old): the
browser's cookie is cleared and the page is a signed-out one.

Renewing only past half-life costs at most one call to auth per browser and
half-life, and a visitor who comes back before the token expired waits for none.
"""

from __future__ import annotations

import logging
from http.cookies import CookieError, SimpleCookie

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ticketing_common.session import COOKIE_NAME, clear_session_cookie, read_token
from ticketing_web.api_client import Caller, MarketplaceApi
from ticketing_web.errors import ApiError, UpstreamFailed
from ticketing_web.settings import Settings

logger = logging.getLogger("ticketing.web.session")

# Assets carry no user data and are fetched in bursts: never a reason to renew.
UNRENEWED_PREFIXES = ("/static/", "/healthz", "/readyz")


class SessionRenewal:
    """ASGI middleware: renews the visitor's session token through auth when it is due."""

    def __init__(self, app: ASGIApp, api: MarketplaceApi, settings: Settings) -> None:
        self.app = app
        self.api = api
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(UNRENEWED_PREFIXES):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        token = request.cookies.get(COOKIE_NAME)
        content = read_token(token, self.settings) if token else None
        if token is None or content is None or not content.past_half_life():
            await self.app(scope, receive, send)
            return
        client = request.client.host if request.client else None
        set_cookies = await self._renew(Caller(session=token, client_address=client))
        if set_cookies is None:
            await self.app(scope, receive, send)  # auth unavailable: the token as it is
            return

        async def send_with_cookies(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                # A page that set the session itself (sign-in, sign-out) has the last word.
                own = any(v.startswith(f"{COOKIE_NAME}=") for v in headers.getlist("set-cookie"))
                if not own:
                    for value in set_cookies:
                        headers.append("set-cookie", value)
            await send(message)

        renewed = _with_session(scope, _session_of(set_cookies))
        await self.app(renewed, receive, send_with_cookies)

    async def _renew(self, caller: Caller) -> list[str] | None:
        """Auth's Set-Cookie for the browser: a new token, or the session cleared when
        it ended; None when auth could not say."""
        try:
            return (await self.api.renew_session(caller)).set_cookies
        except ApiError as refused:
            if refused.status_code != 401:
                logger.warning("session renewal refused", extra={"status": refused.status_code})
                return None
            cleared = Response()
            clear_session_cookie(cleared, self.settings)
            return cleared.headers.getlist("set-cookie")
        except UpstreamFailed:
            return None


def _session_of(set_cookies: list[str]) -> str | None:
    """The session token these ``Set-Cookie`` headers give the browser; None if cleared."""
    for header in set_cookies:
        cookie: SimpleCookie = SimpleCookie()
        try:
            cookie.load(header)
        except CookieError:
            continue
        morsel = cookie.get(COOKIE_NAME)
        if morsel is not None:
            return morsel.value if morsel.value and morsel["max-age"] != "0" else None
    return None


def _with_session(scope: Scope, token: str | None) -> Scope:
    """The request as if the browser had sent ``token`` (or no session) already."""
    cookies = {name: value for name, value in Request(scope).cookies.items() if name != COOKIE_NAME}
    if token is not None:
        cookies[COOKIE_NAME] = token
    headers = [(name, value) for name, value in scope["headers"] if name != b"cookie"]
    if cookies:
        header = "; ".join(f"{name}={value}" for name, value in cookies.items())
        headers.append((b"cookie", header.encode("latin-1")))
    return {**scope, "headers": headers}
