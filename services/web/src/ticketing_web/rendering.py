"""HTML rendering: the Jinja2 environment, one ``render`` for every page, and the HTML
error pages this service renders instead of the shared library's JSON errors."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.exceptions import HTTPException as StarletteHTTPException

from ticketing_common.errors import AppError, UnexpectedErrors
from ticketing_common.eticket import qr_svg
from ticketing_common.session import current_user
from ticketing_web import csrf
from ticketing_web.errors import (
    ApiError,
    BadPageRequest,
    MethodNotAllowed,
    PageNotFound,
    SignInRequired,
)
from ticketing_web.service import format_money, format_time

logger = logging.getLogger("ticketing.web")

PACKAGE_DIR = Path(__file__).parent
STATIC_DIR = PACKAGE_DIR / "static"


def qr_code(code: str, scale: int = 4) -> Markup:
    """An admission code's QR code, inline. Marked safe because segno writes the whole
    element (the modules as paths): no text of the code or of a visitor is in it."""
    return Markup(qr_svg(code, scale=scale))  # noqa: S704


templates = Jinja2Templates(directory=PACKAGE_DIR / "templates")
templates.env.filters["money"] = format_money
templates.env.filters["time"] = format_time
templates.env.filters["qr"] = qr_code


def render(
    request: Request,
    template: str,
    context: Mapping[str, object] | None = None,
    *,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> HTMLResponse:
    """A complete page: the template plus what every page needs (user, CSRF token)."""
    values: dict[str, object] = {
        "current_user": current_user(request),
        "csrf_field": csrf.FIELD_NAME,
        "csrf_token": csrf.token_for(request),
        "path": request.url.path,
    }
    values.update(context or {})
    response = templates.TemplateResponse(
        request, template, values, status_code=status_code, headers=headers
    )
    csrf.set_cookie(request, response)
    # A page shows one person's data (header, orders): never cache it in a shared cache.
    response.headers["Cache-Control"] = "no-store"
    return response


TITLES = {
    400: "Bad request",
    401: "Please sign in",
    403: "Not allowed",
    404: "Page not found",
    405: "Not here",
    409: "Not possible right now",
    429: "Too many attempts",
}


def error_page(request: Request, error: AppError) -> HTMLResponse:
    return _error_page(request, error.status_code, [item.message for item in error.items])


def _error_page(request: Request, status_code: int, messages: list[str]) -> HTMLResponse:
    return render(
        request,
        "error.html",
        {
            "title": TITLES.get(status_code, "Something went wrong"),
            "messages": messages,
            "status_code": status_code,
        },
        status_code=status_code,
    )


def redirect(url: str) -> RedirectResponse:
    """Post/redirect/get: a form's answer is a 303 to the page to show next."""
    return RedirectResponse(url, status_code=303)


async def _sign_in_first(request: Request, exc: Exception) -> RedirectResponse:
    assert isinstance(exc, SignInRequired)
    query = f"?{request.url.query}" if request.url.query else ""
    return redirect("/signin?" + urlencode({"next": exc.back_to or request.url.path + query}))


async def _app_error(request: Request, exc: Exception) -> HTMLResponse:
    assert isinstance(exc, AppError)
    return error_page(request, exc)


async def _api_error(request: Request, exc: Exception) -> HTMLResponse:
    """An API refusal no page expected: its own (user-facing) message, on a page."""
    assert isinstance(exc, ApiError)
    return _error_page(request, exc.status_code, [item.message for item in exc.errors])


async def _http_error(request: Request, exc: Exception) -> HTMLResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        return error_page(request, PageNotFound())
    if exc.status_code == 405:
        # A page that exists, asked for the wrong way (e.g. GET of a form action).
        return error_page(request, MethodNotAllowed())
    error = BadPageRequest(exc.detail if isinstance(exc.detail, str) else None)
    return error_page(request, error)


async def _validation_error(request: Request, exc: Exception) -> HTMLResponse:
    return error_page(request, BadPageRequest())


async def _unexpected(request: Request, exc: Exception) -> HTMLResponse:
    logger.exception(
        "unhandled error", extra={"path": request.url.path, "error": type(exc).__name__}
    )
    response = templates.TemplateResponse(
        request,
        "error.html",
        {
            "title": "Something went wrong",
            "messages": ["Something went wrong on our side. Please try again in a moment."],
            "status_code": 500,
            "current_user": None,
            "csrf_field": csrf.FIELD_NAME,
            "csrf_token": "",
            "path": request.url.path,
        },
        status_code=500,
    )
    return response


def install_html_error_handlers(app: FastAPI) -> None:
    """Errors of this service are pages, not the APIs' JSON bodies: given to
    the spec's ``error_handlers`` instead of the shared handlers."""
    app.add_exception_handler(SignInRequired, _sign_in_first)
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
    # As the shared handlers do, and first, so innermost: an unexpected error ends as
    # this page's 500 inside the request's context, never as a dropped connection.
    app.add_middleware(UnexpectedErrors, handlers=app.exception_handlers)
