"""The error types of every service and the one handler that renders them.

Every error body has SPEC §3's shape: ``{"errors": [{"message": ..., "field": ...}]}``
with ``field`` only where one input field is at fault. Expected failures are
subclasses of :class:`AppError`; anything else becomes a generic 500.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, ExceptionHandler, Message, Receive, Scope, Send

logger = logging.getLogger("ticketing.errors")


class ErrorItem(BaseModel):
    message: str
    field: str | None = None

    def as_dict(self) -> dict[str, str]:
        item = {"message": self.message}
        if self.field is not None:
            item["field"] = self.field
        return item


class ErrorBody(BaseModel):
    """The shared error shape, for OpenAPI documentation of error responses."""

    errors: list[ErrorItem]


class AppError(Exception):
    """An expected failure with a status code; subclass it per domain error."""

    status_code: ClassVar[int] = 400
    message: ClassVar[str] = "Bad request"

    def __init__(self, message: str | None = None, *, field: str | None = None) -> None:
        self.items = [ErrorItem(message=message or self.message, field=field)]
        super().__init__(self.items[0].message)

    def body(self) -> dict[str, list[dict[str, str]]]:
        return {"errors": [item.as_dict() for item in self.items]}

    def headers(self) -> dict[str, str] | None:
        return None


class BadRequest(AppError):
    status_code = 400
    message = "Invalid request"


class ValidationFailed(BadRequest):
    """400 listing every invalid field at once."""

    def __init__(self, items: Sequence[ErrorItem]) -> None:
        super().__init__(items[0].message if items else self.message)
        self.items = list(items)


class NotAuthorized(AppError):
    status_code = 401
    message = "Not authorized"


class PaymentDeclined(AppError):
    status_code = 402
    message = "Your card was declined"


class Forbidden(AppError):
    status_code = 403
    message = "Forbidden"


class NotFound(AppError):
    status_code = 404
    message = "Not found"


class Conflict(AppError):
    status_code = 409
    message = "Conflict with the current state"


class TooManyRequests(AppError):
    status_code = 429
    message = "Too many requests, try again later"

    def __init__(self, message: str | None = None, *, retry_after: int = 60) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str] | None:
        return {"Retry-After": str(self.retry_after)}


def _field_name(loc: Sequence[int | str]) -> str | None:
    """``("body", "price")`` → ``"price"``; the whole body → None."""
    parts = [str(part) for part in loc[1:]] if loc and loc[0] in {"body", "query"} else []
    if not parts and loc and loc[0] not in {"body", "query"}:
        parts = [str(part) for part in loc]
    return ".".join(parts) or None


def _message(error: dict[str, object]) -> str:
    kind = str(error.get("type", ""))
    if kind == "json_invalid":
        return "Malformed JSON body"
    if kind == "missing":
        return "Field required"
    if kind in {"model_attributes_type", "dict_type"}:
        return "Request body must be a JSON object"
    message = str(error.get("msg", "Invalid value"))
    # Pydantic prefixes custom validator messages with "Value error, ".
    return message.removeprefix("Value error, ")


def validation_items(errors: Sequence[dict[str, object]]) -> list[ErrorItem]:
    items: list[ErrorItem] = []
    seen: set[str | None] = set()
    for error in errors:
        loc = error.get("loc", ())
        field = _field_name(loc if isinstance(loc, (list, tuple)) else ())
        if error.get("type") == "json_invalid":
            field = None  # the location is a byte offset, not a field
        if field in seen:  # one message per field keeps the list readable
            continue
        seen.add(field)
        items.append(ErrorItem(message=_message(error), field=field))
    return items


async def _app_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AppError)
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers())


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [dict(e) for e in exc.errors()]
    content_type = request.headers.get("content-type", "")
    if request.method in {"POST", "PUT", "PATCH"} and not content_type.startswith(
        "application/json"
    ):
        # FastAPI reads a non-JSON body as missing; say what is actually wrong.
        body = await request.body()
        if body:
            return _app_error_response(BadRequest("Content-Type must be application/json"))
    return _app_error_response(ValidationFailed(validation_items(errors)))


def _app_error_response(error: AppError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status_code, headers=error.headers())


async def _http_error_handler(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    messages = {404: "Not found", 405: "Method not allowed"}
    message = messages.get(exc.status_code) or (
        exc.detail if isinstance(exc.detail, str) else "Request failed"
    )
    return JSONResponse(
        {"errors": [{"message": message}]},
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


async def _unexpected_handler(request: Request, exc: Exception) -> JSONResponse:
    logger.exception(
        "unhandled error", extra={"path": request.url.path, "error": type(exc).__name__}
    )
    return JSONResponse({"errors": [{"message": "Something went wrong"}]}, status_code=500)


class UnexpectedErrors:
    """Innermost middleware: an unexpected exception ends as the app's 500, and ends there.

    Starlette's outermost ``ServerErrorMiddleware`` sends the 500 and then re-raises
    to the server, and uvicorn answers any exception after the response started by
    closing the connection: the next request a gateway sends on that keep-alive
    connection fails (a 502). Here the exception is rendered by the app's own
    handler for ``Exception`` (JSON, or the web client's HTML page), inside the
    request's context (its id in the log line), and is not re-raised.

    An exception after the response started is re-raised: the body is half-sent,
    and only closing the connection tells the client it is incomplete. One after
    the response is complete (a background task) is only logged: the client has it all.
    """

    def __init__(self, app: ASGIApp, handlers: Mapping[Any, ExceptionHandler]) -> None:
        self.app = app
        # The app's own (live) mapping: a handler installed later, like the web
        # client's HTML page, is the one used.
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = complete = False

        async def send_noting_progress(message: Message) -> None:
            nonlocal started, complete
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                complete = True
            await send(message)

        try:
            await self.app(scope, receive, send_noting_progress)
        except Exception as exc:
            if complete:
                logger.exception(
                    "unhandled error after the response",
                    extra={"path": scope.get("path"), "error": type(exc).__name__},
                )
                return
            if started:
                logger.error(
                    "unhandled error after the response started; aborting the connection",
                    extra={"path": scope.get("path"), "error": type(exc).__name__},
                )
                raise
            response = await self._render(Request(scope, receive), exc)
            await response(scope, receive, send)

    async def _render(self, request: Request, exc: Exception) -> Response:
        handler = self.handlers.get(Exception) or self.handlers.get(500) or _unexpected_handler
        outcome = handler(request, exc)  # type: ignore[arg-type]  # an HTTP handler
        response = await outcome if inspect.isawaitable(outcome) else outcome
        if not isinstance(response, Response):
            raise TypeError(f"the handler for unexpected errors returned {response!r}")
        return response


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_error_handler)
    # Also given to Starlette's outermost middleware, for a failure in a middleware.
    app.add_exception_handler(Exception, _unexpected_handler)
    # Added first, so innermost: inside every middleware added after it (request ids).
    app.add_middleware(UnexpectedErrors, handlers=app.exception_handlers)


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorBody} for code in (400, 401, 402, 403, 404, 409, 429)
}

__all__ = [
    "ERROR_RESPONSES",
    "AppError",
    "BadRequest",
    "Conflict",
    "ErrorBody",
    "ErrorItem",
    "Forbidden",
    "NotAuthorized",
    "NotFound",
    "PaymentDeclined",
    "TooManyRequests",
    "UnexpectedErrors",
    "ValidationFailed",
    "install_error_handlers",
]
