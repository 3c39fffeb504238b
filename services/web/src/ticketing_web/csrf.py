"""CSRF protection of every form: a signed per-browser token, and same-site posts only.

A browser gets a random token in the ``csrf`` cookie, signed with an HMAC under a
key derived from ``JWT_KEY`` (so nobody can mint one, e.g. by planting a cookie
from a sibling domain). Every form carries the same token in a hidden field.
A POST is accepted only when the field equals the cookie and the signature is
valid, and when its ``Origin`` (or, without one, its ``Referer``) is this site.
Another site can make a browser post, but it can neither read the token nor
forge the ``Origin``; a rejected POST is a 403 before anything is changed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from fastapi import Request, Response

from ticketing_common.session import settings_of
from ticketing_common.settings import ServiceSettings
from ticketing_web.errors import CsrfRejected

COOKIE_NAME = "csrf"
FIELD_NAME = "csrf_token"
_STATE_KEY = "csrf_token"
_PURPOSE = b"ticketing-web-csrf-v1"


def _signature(nonce: str, settings: ServiceSettings) -> str:
    # A key of its own, derived from the shared secret: a CSRF token is never a session.
    key = hmac.new(settings.JWT_KEY.encode(), _PURPOSE, hashlib.sha256).digest()
    return hmac.new(key, nonce.encode(), hashlib.sha256).hexdigest()


def new_token(settings: ServiceSettings) -> str:
    nonce = secrets.token_urlsafe(24)
    return f"{nonce}.{_signature(nonce, settings)}"


def is_valid(token: str, settings: ServiceSettings) -> bool:
    nonce, _, signature = token.partition(".")
    if not nonce or not signature:
        return False
    return hmac.compare_digest(signature, _signature(nonce, settings))


def token_for(request: Request) -> str:
    """The browser's token, or a new one that ``set_cookie`` will hand to the browser."""
    cached = getattr(request.state, _STATE_KEY, None)
    if isinstance(cached, str):
        return cached
    settings = settings_of(request)
    token = request.cookies.get(COOKIE_NAME)
    if token is None or not is_valid(token, settings):
        token = new_token(settings)
        request.state.csrf_new = True
    setattr(request.state, _STATE_KEY, token)
    return token


def set_cookie(request: Request, response: Response) -> None:
    """Give the browser the token its page's forms carry, if it did not have it yet."""
    if getattr(request.state, "csrf_new", False):
        response.set_cookie(
            COOKIE_NAME,
            token_for(request),
            httponly=True,
            samesite="lax",
            secure=settings_of(request).COOKIE_SECURE,
            path="/",
        )


def _same_site(request: Request) -> bool:
    """False when the browser says the post comes from another origin."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        # Old browsers and privacy settings may send neither; the token still decides.
        return True
    host = request.headers.get("host", "")
    return bool(host) and urlsplit(source).netloc.lower() == host.lower()


async def check(request: Request) -> None:
    """Reject (403) a POST that is cross-site or lacks this browser's token."""
    if request.method != "POST":
        return
    if not _same_site(request):
        raise CsrfRejected()
    form = await request.form()
    posted = form.get(FIELD_NAME)
    cookie = request.cookies.get(COOKIE_NAME)
    if not isinstance(posted, str) or cookie is None:
        raise CsrfRejected()
    if not hmac.compare_digest(posted.encode(), cookie.encode()):
        raise CsrfRejected()
    if not is_valid(cookie, settings_of(request)):
        raise CsrfRejected()
