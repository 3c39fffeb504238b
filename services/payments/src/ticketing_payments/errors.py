"""Payments' domain errors: small subclasses of the shared error types."""

from __future__ import annotations

from typing import ClassVar

from ticketing_common.errors import AppError, BadRequest, Conflict, NotFound, PaymentDeclined


class OrderNotFound(NotFound):
    message = "Order not found"


class CancelledOrderNotPayable(BadRequest):
    """The order was cancelled: it can no longer be paid."""

    message = "Order has been cancelled"


class CancelledOrderRefunded(BadRequest):
    """The order was cancelled (it expired) after the card was charged: the charge is
    refunded, and the buyer is told so rather than left wondering about the money."""

    message = "Order has been cancelled; your payment has been refunded"


class OrderExpired(BadRequest):
    message = "Order has expired"


class OrderAlreadyPaid(Conflict):
    message = "Order has already been paid"


class PaymentInProgress(Conflict):
    """Another request is confirming this order's payment right now."""

    message = "A payment for this order is in progress; try again in a moment"


class CardDeclined(PaymentDeclined):
    """The card was refused; the message is the provider's, meant for the buyer."""

    message = "Your card was declined."


class InvalidCardToken(BadRequest):
    message = "The card token is invalid or has expired"


class AmountNotChargeable(BadRequest):
    message = "This price cannot be charged by card"


class PaymentProviderUnavailable(AppError):
    """Stripe could not be reached or failed: nothing about the provider is shown."""

    status_code: ClassVar[int] = 502
    message = "The payment provider is unavailable; please try again"
