"""Stripe's error object: ``{"error": {"type", "code", "message", "param", ...}}``.

The sandbox answers in Stripe's shape, not the project's, because its client is
the Stripe SDK, which turns these bodies into ``stripe.CardError``,
``stripe.InvalidRequestError``, ``stripe.IdempotencyError`` and so on.

``saved`` says whether the idempotency layer keeps the response: Stripe saves
the outcome of a request once its endpoint began executing, but not a request
that failed parameter validation (nothing happened; a corrected retry with the
same key must be possible).
"""

from __future__ import annotations

from ticketing_stripe_sandbox.forms import Json

DOCS = "https://docs.stripe.com/error-codes"


class StripeError(Exception):
    """An error response in Stripe's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        saved: bool = True,
        extra: dict[str, Json] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.saved = saved
        self.extra = dict(extra or {})

    def body(self) -> dict[str, Json]:
        error: dict[str, Json] = {"type": self.type, "message": self.message}
        if self.code is not None:
            error["code"] = self.code
            error["doc_url"] = f"{DOCS}/{self.code.replace('_', '-')}"
        if self.param is not None:
            error["param"] = self.param
        error.update(self.extra)
        return {"error": error}


def invalid_params(
    message: str, *, param: str | None = None, code: str | None = None
) -> StripeError:
    """A 400 for bad input, found before anything ran: never saved for a key."""
    return StripeError(400, message, code=code, param=param, saved=False)


def parameter_missing(param: str) -> StripeError:
    return invalid_params(
        f"Missing required param: {param}.", param=param, code="parameter_missing"
    )


def parameter_unknown(param: str) -> StripeError:
    return invalid_params(
        f"Received unknown parameter: {param}", param=param, code="parameter_unknown"
    )


def resource_missing(kind: str, object_id: str, *, param: str = "id") -> StripeError:
    """404 for the object a path names; Stripe spells ``kind`` the way its objects do."""
    return StripeError(
        404, f"No such {kind}: '{object_id}'", code="resource_missing", param=param, saved=False
    )


def unrecognized_url(method: str, path: str) -> StripeError:
    return StripeError(
        404,
        f"Unrecognized request URL ({method}: {path}). Please see https://docs.stripe.com/api.",
        saved=False,
    )


def authentication_failed(message: str) -> StripeError:
    return StripeError(401, message, saved=False)


def idempotency_error(status: int, message: str) -> StripeError:
    return StripeError(status, message, type="idempotency_error", saved=False)


def api_error() -> StripeError:
    return StripeError(
        500, "An unexpected error occurred in the Stripe sandbox.", type="api_error", saved=True
    )


def unexpected_state(message: str, intent: dict[str, Json]) -> StripeError:
    """400 for a PaymentIntent whose status forbids the operation; Stripe sends the intent
    along."""
    return StripeError(
        400, message, code="payment_intent_unexpected_state", extra={"payment_intent": intent}
    )
