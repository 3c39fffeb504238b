"""Payments' settings: the shared database, bus and Redis settings plus the Stripe account
and the limits on payment attempts.

The only place the payments service reads its environment (``UPPER_SNAKE`` names).
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from ticketing_common.ratelimit import Rate
from ticketing_common.settings import EventServiceSettings, RedisSettings


class Settings(EventServiceSettings, RedisSettings):
    # A real key talks to Stripe; ``ticketing up`` and the tests pass the sandbox's.
    STRIPE_SECRET_KEY: SecretStr
    # Unset: Stripe's own API. Set: a Stripe-compatible server (the local sandbox).
    STRIPE_API_BASE: str | None = None
    # The SDK retries connection errors, 409s and 5xx itself, with back-off; the
    # idempotency keys make those retries safe.
    STRIPE_MAX_NETWORK_RETRIES: int = Field(default=2, ge=0, le=5)
    STRIPE_TIMEOUT_SECONDS: float = Field(default=10, gt=0)
    # How often the reconciler settles payments: attempts whose outcome a crash left
    # unknown (asking Stripe), and charges of cancelled orders not refunded yet.
    REFUND_SWEEP_SECONDS: float = Field(default=60, gt=0)
    # How long a payment waits for an order the replica has not received yet (the buyer
    # paid right after ordering) before answering 404.
    ORDER_REPLICA_WAIT_SECONDS: float = Field(default=5, ge=0)
    # Attempts to charge a card (``limits`` notation, counted in Redis by every replica):
    # declined cards count; answering a payment already made never does (throttle.py).
    PAYMENT_RATE_PER_ORDER: Rate = "5/10 minutes"
    PAYMENT_RATE_PER_USER: Rate = "20/hour"

    @field_validator("STRIPE_API_BASE")
    @classmethod
    def _blank_is_stripe(cls, value: str | None) -> str | None:
        """An empty variable means "not set" (a shell or manifest often passes ``""``)."""
        if value is None or not value.strip():
            return None
        return value.strip().rstrip("/")
