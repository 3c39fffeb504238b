"""The web client's errors: the shared error types, rendered as HTML pages.

``ApiError`` is an expected answer of an API (400, 402, 409, ...) that a page
shows next to its form; the others end the request with an error page.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from typing import TypeVar

from ticketing_common.errors import AppError, BadRequest, Forbidden, NotFound
from ticketing_web.schemas import FieldError

T = TypeVar("T")


class PageNotFound(NotFound):
    message = "We could not find that page."


class CsrfRejected(Forbidden):
    message = (
        "This form could not be accepted because it did not come from this site "
        "or has expired. Please go back, reload the page and try again."
    )


class BadPageRequest(BadRequest):
    message = "That request was not understood."


class MethodNotAllowed(AppError):
    status_code = 405
    message = "That page cannot be opened this way."


class UpstreamFailed(AppError):
    """An API was unreachable or failed unexpectedly; the page says so, without internals."""

    status_code = 502
    message = "Something went wrong on our side. Please try again in a moment."


class SignInRequired(Exception):
    """Nobody is signed in, or the API no longer takes the session: not an error page
    but a 303 to the sign-in page, which comes back to ``back_to`` (this page if None)."""

    def __init__(self, back_to: str | None = None) -> None:
        self.back_to = back_to
        super().__init__(back_to or "this page")


class ApiError(Exception):
    """An expected 4xx answer of an API, with its messages in the shared error shape."""

    def __init__(
        self, status_code: int, errors: Iterable[FieldError], *, retry_after: str | None = None
    ) -> None:
        self.status_code = status_code
        self.errors = list(errors) or [FieldError(message="The request was refused")]
        # A 429's Retry-After (whole seconds), relayed on the page that shows it.
        self.retry_after = retry_after if retry_after and retry_after.isdigit() else None
        super().__init__(f"{status_code}: {self.errors[0].message}")

    def headers(self) -> dict[str, str]:
        return {"Retry-After": self.retry_after} if self.retry_after else {}

    def split(self, fields: dict[str, str]) -> tuple[dict[str, str], list[str]]:
        """Messages by form field (``fields`` maps API field names to form field names),
        and the messages that belong to no field of the form."""
        by_field: dict[str, str] = {}
        general: list[str] = []
        for error in self.errors:
            form_field = fields.get(error.field) if error.field else None
            if form_field is not None and form_field not in by_field:
                by_field[form_field] = error.message
            elif form_field is None:
                general.append(error.message)
        return by_field, general


async def found(call: Awaitable[T]) -> T:
    """An API's answer, where its 404 (no such ticket or order) is this site's 404 page."""
    try:
        return await call
    except ApiError as error:
        if error.status_code == 404:
            raise PageNotFound() from None
        raise
