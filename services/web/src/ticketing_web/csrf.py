"""CSRF protection of every form: a token bound to the browser's session, and
same-origin posts only.

Every form carries a token ``nonce.signature``: an HMAC, under a key derived from
``JWT_KEY`` (so nobody can mint one), of a random nonce and of the session it was
issued for. Signed in, that is the session itself; before signing in, a random
pre-session id the browser keeps in the ``csrf`` cookie. A POST is accepted only
when its token's signature matches the session the request carries now, so a token
lifted from one session (or planted from a sibling domain) is refused in another,
and signing in or out makes the pages re-issue their forms' tokens. The POST's
``Origin`` (or, without one, its ``Referer``) must also be this site's exact origin:
scheme, host and port. Another site can make a browser post, but it can neither read
a token nor forge the ``Origin``; a rejected POST is a 403 before anything is changed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from fastapi import Request, Response

from ticketing_common import session
from ticketing_common.settings import ServiceSettings
from ticketing_web.errors import CsrfRejected

COOKIE_NAME = "csrf"
FIELD_NAME = "csrf_token"
_STATE_KEY = "csrf_token"
_PURPOSE = b"ticketing-web-csrf-v2"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _signature(nonce: str, binding: str, settings: ServiceSettings) -> str:
    # A key of its own, derived from the shared secret: a CSRF token is never a session.
    key = hmac.new(settings.JWT_KEY.encode(), _PURPOSE, hashlib.sha256).digest()
    # The nonce has no "|" (URL-safe base64), so nonce and binding cannot be shifted.
    return hmac.new(key, f"{nonce}|{binding}".encode(), hashlib.sha256).hexdigest()


def new_token(binding: str, settings: ServiceSettings) -> str:
    """A token valid only for requests of the session ``binding`` names."""
    nonce = secrets.token_urlsafe(24)
    return f"{nonce}.{_signature(nonce, binding, settings)}"


def is_valid(token: str, binding: str, settings: ServiceSettings) -> bool:
    nonce, _, signature = token.partition(".")
    if not nonce or not signature:
        return False
    return hmac.compare_digest(signature, _signature(nonce, binding, settings))


def _session_binding(request: Request, settings: ServiceSettings) -> str | None:
    """The signed-in session this request carries, or None."""
    token = request.cookies.get(session.COOKIE_NAME)
    # Read even when expired: the binding names the browser's session, and a form
    # posted just after its token expired (auth unreachable to renew it) is still
    # that session's.
    content = session.read_token(token, settings) if token else None
    if content is None:
        return None
    user = content.user
    # The session's id, not the token: it outlives a renewed token, so renewing a
    # session keeps its pages' forms valid.
    return f"session:{user.sid}"


def _pre_session_id(request: Request) -> str:
    """The browser's pre-session id (the ``csrf`` cookie), made up if it has none yet."""
    cached = getattr(request.state, "csrf_pre_session", None)
    if isinstance(cached, str):
        return cached
    given = request.cookies.get(COOKIE_NAME, "")
    if 16 <= len(given) <= 64 and given.replace("-", "").replace("_", "").isalnum():
        value = given
    else:
        value = secrets.token_urlsafe(24)
        request.state.csrf_new = True
    request.state.csrf_pre_session = value
    return value


def binding_of(request: Request) -> str:
    """What this request's tokens are bound to: its session, else its pre-session id."""
    settings = session.settings_of(request)
    return _session_binding(request, settings) or "pre-session:" + _pre_session_id(request)


def token_for(request: Request) -> str:
    """The token the page's forms carry, for the session the request carries."""
    cached = getattr(request.state, _STATE_KEY, None)
    if isinstance(cached, str):
        return cached
    token = new_token(binding_of(request), session.settings_of(request))
    setattr(request.state, _STATE_KEY, token)
    return token


def set_cookie(request: Request, response: Response) -> None:
    """Give the browser the pre-session id its tokens are bound to, if it had none yet."""
    if getattr(request.state, "csrf_new", False):
        response.set_cookie(
            COOKIE_NAME,
            _pre_session_id(request),
            httponly=True,
            samesite="lax",
            secure=session.settings_of(request).COOKIE_SECURE,
            path="/",
        )


def origin_of(url: str) -> tuple[str, str, int | None] | None:
    """``(scheme, host, port)`` of a URL, the default port filled in; None if it has none."""
    try:
        parts = urlsplit(url)
        port = parts.port or _DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.scheme or not parts.hostname:
        return None
    return parts.scheme.lower(), parts.hostname.lower(), port


def site_origin(request: Request) -> tuple[str, str, int | None] | None:
    """This site's origin as the browser sees it. Behind the gateway (Caddy, ingress-nginx)
    the scheme the browser used is in ``X-Forwarded-Proto``, which both set themselves
    (a client's own value is replaced); the gateways pass the ``Host`` on unchanged."""
    host = request.headers.get("host", "")
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip()
    scheme = forwarded or request.url.scheme
    return origin_of(f"{scheme}://{host}") if host else None


def _same_origin(request: Request) -> bool:
    """False when the browser says the post comes from another origin."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        # Old browsers and privacy settings may send neither; the token still decides.
        return True
    own = site_origin(request)
    return own is not None and origin_of(source) == own


async def check(request: Request) -> None:
    """Reject (403) a POST that is cross-origin or lacks a token of this session."""
    if request.method != "POST":
        return
    if not _same_origin(request):
        raise CsrfRejected()
    form = await request.form()
    posted = form.get(FIELD_NAME)
    if not isinstance(posted, str):
        raise CsrfRejected()
    if not is_valid(posted, binding_of(request), session.settings_of(request)):
        raise CsrfRejected()
