"""The one place that talks to Stripe: a ``stripe.StripeClient`` behind typed async calls.

Every call carries an idempotency key derived from the order, so a retry (by the
SDK, by the buyer, by a redelivered event) gets the same object back instead of
a second charge or refund:

- one PaymentIntent per order: key = the order id, same parameters every time;
- one confirmation per order and card: key = order id + a digest of the token;
- one refund per order: key ``refund-<order id>`` (with the order id in its metadata).

Cancelling ("voiding") an intent needs no key: cancelling a cancelled intent is
refused as an unexpected state, and the intent is then read back.

Stripe's errors become the service's: a declined card is a 402 with Stripe's
message for the buyer, an unusable token a 400, an outage a 502 without
internals. Nothing else in the service imports ``stripe``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

import stripe
from stripe.params import PaymentIntentConfirmParams

from ticketing_payments.errors import (
    AmountNotChargeable,
    CardDeclined,
    InvalidCardToken,
    PaymentInProgress,
    PaymentProviderUnavailable,
)
from ticketing_payments.settings import Settings

logger = logging.getLogger("ticketing.payments.provider")

CURRENCY = "usd"
# Stripe's codes for "this intent cannot be confirmed in its current state" (e.g.
# it already succeeded through a concurrent request with another card).
UNEXPECTED_STATE = "payment_intent_unexpected_state"


class IntentStatus(StrEnum):
    """The PaymentIntent statuses the service tells apart (Stripe has a few more)."""

    REQUIRES_PAYMENT_METHOD = "requires_payment_method"
    REQUIRES_CONFIRMATION = "requires_confirmation"
    REQUIRES_ACTION = "requires_action"
    PROCESSING = "processing"
    SUCCEEDED = "succeeded"
    CANCELED = "canceled"
    OTHER = "other"

    @classmethod
    def of(cls, value: str) -> IntentStatus:
        try:
            return cls(value)
        except ValueError:
            return cls.OTHER


@dataclass(frozen=True)
class Intent:
    """What the service needs of a PaymentIntent."""

    id: str
    status: IntentStatus
    amount_cents: int

    @property
    def succeeded(self) -> bool:
        return self.status is IntentStatus.SUCCEEDED


class IntentNotConfirmable(Exception):
    """Stripe refused to confirm: the intent is not in a payable state (perhaps paid)."""


def confirm_key(order_id: UUID, token: str) -> str:
    """One confirmation per order and card; the token is hashed (keys are at most 255)."""
    digest = hashlib.sha256(token.encode()).hexdigest()[:32]
    return f"confirm-{order_id}-{digest}"


def refund_key(order_id: UUID) -> str:
    return f"refund-{order_id}"


def _payment_method(token: str) -> PaymentIntentConfirmParams:
    if token.startswith("pm_"):
        return {"payment_method": token}
    # A card token becomes the intent's payment method on confirmation. Stripe accepts
    # ``payment_method_data[card][token]``; the SDK's typed params do not list it.
    return {
        "payment_method_data": {
            "type": "card",
            "card": {"token": token},  # type: ignore[typeddict-unknown-key]
        }
    }


def _intent(intent: stripe.PaymentIntent) -> Intent:
    return Intent(id=intent.id, status=IntentStatus.of(intent.status), amount_cents=intent.amount)


AMOUNT_REFUSED = frozenset({"amount_too_small", "amount_too_large"})


@contextmanager
def _translated(*, token_call: bool = False) -> Iterator[None]:
    """Stripe's exceptions as the service's errors."""
    try:
        yield
    except stripe.CardError as error:
        # Stripe's message on a card error is written for the buyer ("Your card was declined.").
        raise CardDeclined(
            str(error.user_message or CardDeclined.message), field="token"
        ) from error
    except stripe.InvalidRequestError as error:
        if error.code == UNEXPECTED_STATE:
            raise IntentNotConfirmable(str(error.user_message)) from error
        if error.param == "amount" or error.code in AMOUNT_REFUSED:
            # Stripe's card limits (USD: at least $0.50, at most $999,999.99) are
            # narrower than the prices sellers may set.
            raise AmountNotChargeable(
                str(error.user_message or AmountNotChargeable.message)
            ) from error
        if token_call and error.http_status in {400, 404}:
            # "No such token", "No such PaymentMethod", a used single-use token, ...
            raise InvalidCardToken(field="token") from error
        logger.error("stripe refused a request", extra={"error": repr(error)})
        raise PaymentProviderUnavailable() from error
    except stripe.APIError as error:
        if error.http_status == 409:
            # A concurrent request holds the same idempotency key, still after the
            # SDK's retries: that request is paying this order right now.
            raise PaymentInProgress() from error
        logger.error("stripe failed", extra={"error": repr(error)})
        raise PaymentProviderUnavailable() from error
    except stripe.StripeError as error:
        # Connection errors, rate limits, authentication, idempotency misuse: not the buyer's.
        logger.error("stripe unavailable", extra={"error": repr(error)})
        raise PaymentProviderUnavailable() from error


class PaymentProvider:
    """Stripe for one service instance; close it on shutdown (it holds an HTTP pool)."""

    def __init__(
        self,
        secret_key: str,
        *,
        api_base: str | None = None,
        max_network_retries: int = 2,
        timeout_seconds: float = 10,
    ) -> None:
        # The longest one call can take, the SDK's retries and back-off included: a
        # pending attempt older than this is no longer being confirmed by anyone.
        self.longest_call_seconds = (
            timeout_seconds * (max_network_retries + 1)
            + stripe.HTTPClient.MAX_DELAY * max_network_retries
        )
        self._http = stripe.HTTPXClient(timeout=timeout_seconds)
        self._client = stripe.StripeClient(
            secret_key,
            base_addresses={"api": api_base} if api_base else None,
            http_client=self._http,
            max_network_retries=max_network_retries,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> PaymentProvider:
        return cls(
            settings.STRIPE_SECRET_KEY.get_secret_value(),
            api_base=settings.STRIPE_API_BASE,
            max_network_retries=settings.STRIPE_MAX_NETWORK_RETRIES,
            timeout_seconds=settings.STRIPE_TIMEOUT_SECONDS,
        )

    async def intent_for_order(self, order_id: UUID, amount_cents: int) -> Intent:
        """The order's one PaymentIntent, created on the first call and returned by every other.

        The response of a replayed create is the intent as it was created, so its
        status says nothing about a later confirmation.
        """
        with _translated():
            intent = await self._client.v1.payment_intents.create_async(
                {
                    "amount": amount_cents,
                    "currency": CURRENCY,
                    # No redirect-based methods: a card is confirmed without a return_url.
                    "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
                    "metadata": {"order_id": str(order_id)},
                },
                {"idempotency_key": str(order_id)},
            )
        return _intent(intent)

    async def confirm(self, intent_id: str, *, order_id: UUID, token: str) -> Intent:
        """Charge the card. Raises CardDeclined (the intent stays payable),
        InvalidCardToken, IntentNotConfirmable, PaymentInProgress or
        PaymentProviderUnavailable."""
        with _translated(token_call=True):
            intent = await self._client.v1.payment_intents.confirm_async(
                intent_id,
                _payment_method(token),
                {"idempotency_key": confirm_key(order_id, token)},
            )
        return _intent(intent)

    async def retrieve(self, intent_id: str) -> Intent:
        with _translated():
            intent = await self._client.v1.payment_intents.retrieve_async(intent_id)
        return _intent(intent)

    async def void(self, intent_id: str) -> Intent:
        """Cancel the intent so that no confirmation can ever charge it; the intent as it
        is afterwards: canceled, or succeeded when a charge got in first."""
        try:
            with _translated():
                intent = await self._client.v1.payment_intents.cancel_async(intent_id)
        except IntentNotConfirmable:
            return await self.retrieve(intent_id)  # already succeeded, or already cancelled
        return _intent(intent)

    async def refund(self, intent_id: str, *, order_id: UUID) -> str:
        """Refund the intent's charge in full, once per order; the refund's id."""
        with _translated():
            refund = await self._client.v1.refunds.create_async(
                {"payment_intent": intent_id, "metadata": {"order_id": str(order_id)}},
                {"idempotency_key": refund_key(order_id)},
            )
        return refund.id

    async def close(self) -> None:
        await self._http.close_async()  # type: ignore[no-untyped-call]
