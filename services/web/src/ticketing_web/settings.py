"""The web client's settings: where the APIs are, Stripe's publishable key if any, and
the event bus (``NATS_URL``, ``NATS_NAMESPACE``) it follows session revocations on.

The only place the web service reads its environment (``UPPER_SNAKE`` names).
"""

from __future__ import annotations

from pydantic import Field, field_validator

from ticketing_common.settings import BusSettings, OrderSizeSettings


class Settings(BusSettings, OrderSizeSettings):
    # Base URL of the gateway; every API is reached under it (``/api/users``, ...).
    GATEWAY_URL: str = Field(pattern=r"^https?://[^/\s]+/?$")
    # With a publishable key the pay form tokenises cards with Stripe.js; without one
    # it offers Stripe's test cards.
    STRIPE_PUBLISHABLE_KEY: str | None = Field(default=None, pattern=r"^pk_[A-Za-z0-9_]+$")
    # How long one API call may take before the page says the service is unavailable.
    UPSTREAM_TIMEOUT_SECONDS: float = Field(default=10.0, gt=0)

    @field_validator("STRIPE_PUBLISHABLE_KEY", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        # An exported but empty variable means "no key", not an invalid key.
        return value or None

    @property
    def gateway_base(self) -> str:
        return self.GATEWAY_URL.rstrip("/")
