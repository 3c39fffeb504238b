"""The sandbox's FastAPI application: Stripe's routes, its error shape, ``Request-Id``.

State is in memory and lives as long as the app, or, with a state file, is
written through to it and survives restarts (``store.py``): one process is one
Stripe "world", each secret key an account in it. Nothing here is Stripe's real
behaviour beyond what ``resources/`` implements; see docs/stripe-sandbox.md.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ticketing_common.logs import request_id_var
from ticketing_common.state import Components
from ticketing_stripe_sandbox.errors import StripeError, unrecognized_url
from ticketing_stripe_sandbox.repository import Sandbox
from ticketing_stripe_sandbox.routes import router

REQUEST_ID_HEADER = "Request-Id"
STRIPE_VERSION_HEADER = "Stripe-Version"


def _error_response(error: StripeError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status)


async def _stripe_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StripeError)
    return _error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    # Unknown paths and methods: Stripe's "Unrecognized request URL", not FastAPI's detail.
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code in (404, 405):
        return _error_response(unrecognized_url(request.method, request.url.path))
    return _error_response(StripeError(exc.status_code, str(exc.detail), saved=False))


def create_app(state_file: Path | None = None) -> FastAPI:
    """A sandbox: empty and in memory, or the one saved in ``state_file`` (created if
    missing), which it keeps up to date."""
    sandbox = Sandbox() if state_file is None else Sandbox.open(state_file)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            sandbox.close()

    app = FastAPI(
        title="Stripe sandbox",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.components = Components([sandbox])
    app.include_router(router)
    app.add_exception_handler(StripeError, _stripe_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)

    @app.middleware("http")
    async def request_id(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        rid = "req_" + secrets.token_hex(7)
        request.state.request_id = rid
        token = request_id_var.set(rid)
        try:
            response = await call_next(request)
        finally:
            request_id_var.reset(token)
        response.headers[REQUEST_ID_HEADER] = rid
        version = request.headers.get(STRIPE_VERSION_HEADER)
        if version:
            response.headers[STRIPE_VERSION_HEADER] = version
        return response

    return app
