"""The sandbox's objects (PaymentIntent, PaymentMethod, Charge, Refund) and their JSON,
in the shape Stripe's API returns them; plus ids, currencies and amount limits.

Only the fields a client of these endpoints reads are modelled; every other field
Stripe returns is present with the value it has in this flow (mostly null), so
the SDK's objects have the attributes code expects.
"""

from __future__ import annotations

import secrets
import string
import time
from dataclasses import dataclass, field

from ticketing_stripe_sandbox.cards import Decline, TestCard
from ticketing_stripe_sandbox.forms import Json

_ALPHABET = string.ascii_letters + string.digits

# Minimum charge amounts in the smallest unit (Stripe's "minimum and maximum charge
# amounts" table) for the currencies the sandbox knows; any other is refused.
MINIMUM_AMOUNTS: dict[str, int] = {
    "usd": 50,
    "eur": 50,
    "gbp": 30,
    "cad": 50,
    "aud": 50,
    "nzd": 50,
    "chf": 50,
    "sgd": 50,
    "jpy": 50,
    "dkk": 250,
    "nok": 300,
    "sek": 300,
    "hkd": 400,
    "pln": 200,
    "mxn": 1000,
}
ZERO_DECIMAL = frozenset({"jpy"})
MAXIMUM_AMOUNT = 99_999_999  # eight digits, Stripe's limit for most currencies


def new_id(prefix: str) -> str:
    """An id like Stripe's: the object's prefix and 24 random characters."""
    return f"{prefix}_3S" + "".join(secrets.choice(_ALPHABET) for _ in range(22))


def now() -> int:
    return int(time.time())


def format_amount(amount: int, currency: str) -> str:
    """``$0.50 usd`` for Stripe's amount messages."""
    value = str(amount) if currency in ZERO_DECIMAL else f"{amount / 100:.2f}"
    symbol = "$" if currency == "usd" else ""
    return f"{symbol}{value} {currency}"


@dataclass
class PaymentMethod:
    """A card payment method made from a test token or a ``pm_card_…`` name; like
    Stripe, each use of a test name makes a new ``pm_…`` object."""

    id: str
    card: TestCard
    created: int
    exp_month: int
    exp_year: int

    @classmethod
    def of(cls, card: TestCard) -> PaymentMethod:
        today = time.gmtime()
        return cls(new_id("pm"), card, now(), today.tm_mon, today.tm_year + 1)

    def card_json(self) -> dict[str, Json]:
        return {
            "brand": self.card.brand,
            "display_brand": self.card.brand,
            "last4": self.card.last4,
            "exp_month": self.exp_month,
            "exp_year": self.exp_year,
            "funding": self.card.funding,
            "country": self.card.country,
            "checks": {
                "address_line1_check": None,
                "address_postal_code_check": None,
                "cvc_check": None,
            },
            "fingerprint": self.card.last4 + self.card.brand,
            "networks": {"available": [self.card.brand], "preferred": None},
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        }

    def to_json(self) -> dict[str, Json]:
        return {
            "id": self.id,
            "object": "payment_method",
            "type": "card",
            "card": self.card_json(),
            "billing_details": {
                "address": None,
                "email": None,
                "name": None,
                "phone": None,
            },
            "allow_redisplay": "unspecified",
            "created": self.created,
            "customer": None,
            "livemode": False,
            "metadata": {},
        }


@dataclass
class Charge:
    id: str
    amount: int
    currency: str
    payment_intent: str
    payment_method: PaymentMethod
    description: str | None
    metadata: dict[str, str]
    failure: Decline | None
    created: int = field(default_factory=now)
    amount_refunded: int = 0

    @property
    def succeeded(self) -> bool:
        return self.failure is None

    @property
    def refunded(self) -> bool:
        return self.succeeded and self.amount_refunded >= self.amount

    def outcome(self) -> dict[str, Json]:
        if self.failure is None:
            return {
                "network_status": "approved_by_network",
                "reason": None,
                "risk_level": "normal",
                "risk_score": 20,
                "seller_message": "Payment complete.",
                "type": "authorized",
            }
        return {
            "network_status": self.failure.network_status,
            "reason": self.failure.decline_code,
            "risk_level": "normal",
            "risk_score": 20,
            "seller_message": self.failure.seller_message,
            "type": self.failure.outcome_type,
        }

    def to_json(self) -> dict[str, Json]:
        succeeded = self.failure is None
        return {
            "id": self.id,
            "object": "charge",
            "amount": self.amount,
            "amount_captured": self.amount if succeeded else 0,
            "amount_refunded": self.amount_refunded,
            "balance_transaction": f"txn_{self.id[3:]}" if succeeded else None,
            "captured": succeeded,
            "created": self.created,
            "currency": self.currency,
            "customer": None,
            "description": self.description,
            "disputed": False,
            "failure_code": self.failure.code if self.failure else None,
            "failure_message": self.failure.message if self.failure else None,
            "livemode": False,
            "metadata": dict[str, Json](self.metadata),
            "outcome": self.outcome(),
            "paid": succeeded,
            "payment_intent": self.payment_intent,
            "payment_method": self.payment_method.id,
            "payment_method_details": {"type": "card", "card": self.payment_method.card_json()},
            "receipt_email": None,
            "refunded": self.refunded,
            "status": "succeeded" if succeeded else "failed",
        }


@dataclass
class Refund:
    id: str
    amount: int
    currency: str
    charge: str
    payment_intent: str
    metadata: dict[str, str]
    reason: str | None
    created: int = field(default_factory=now)

    def to_json(self) -> dict[str, Json]:
        return {
            "id": self.id,
            "object": "refund",
            "amount": self.amount,
            "balance_transaction": f"txn_{self.id[3:]}",
            "charge": self.charge,
            "created": self.created,
            "currency": self.currency,
            "destination_details": {"type": "card", "card": {"type": "refund"}},
            "metadata": dict[str, Json](self.metadata),
            "payment_intent": self.payment_intent,
            "reason": self.reason,
            "receipt_number": None,
            "source_transfer_reversal": None,
            "status": "succeeded",
            "transfer_reversal": None,
        }


@dataclass
class PaymentIntent:
    id: str
    amount: int
    currency: str
    metadata: dict[str, str]
    description: str | None
    payment_method_types: list[str]
    allowed_payment_method_types: list[str] | None
    automatic_payment_methods: dict[str, Json] | None
    confirmation_method: str
    capture_method: str
    receipt_email: str | None = None
    statement_descriptor: str | None = None
    statement_descriptor_suffix: str | None = None
    payment_method: str | None = None
    status: str = "requires_payment_method"
    latest_charge: str | None = None
    last_payment_error: dict[str, Json] | None = None
    amount_received: int = 0
    canceled_at: int | None = None
    cancellation_reason: str | None = None
    created: int = field(default_factory=now)
    client_secret: str = ""

    def __post_init__(self) -> None:
        if not self.client_secret:
            self.client_secret = f"{self.id}_secret_{secrets.token_urlsafe(18)}"

    @property
    def redirects_allowed(self) -> bool:
        """Automatic payment methods that may redirect: a confirm then needs a return_url."""
        apm = self.automatic_payment_methods
        return bool(apm and apm.get("enabled")) and (apm or {}).get("allow_redirects") != "never"

    def to_json(self) -> dict[str, Json]:
        return {
            "id": self.id,
            "object": "payment_intent",
            "allowed_payment_method_types": (
                None
                if self.allowed_payment_method_types is None
                else list[Json](self.allowed_payment_method_types)
            ),
            "amount": self.amount,
            "amount_capturable": 0,
            "amount_details": {"tip": {}},
            "amount_received": self.amount_received,
            "application": None,
            "application_fee_amount": None,
            "automatic_payment_methods": self.automatic_payment_methods,
            "canceled_at": self.canceled_at,
            "cancellation_reason": self.cancellation_reason,
            "capture_method": self.capture_method,
            "client_secret": self.client_secret,
            "confirmation_method": self.confirmation_method,
            "created": self.created,
            "currency": self.currency,
            "customer": None,
            "description": self.description,
            "excluded_payment_method_types": None,
            "last_payment_error": self.last_payment_error,
            "latest_charge": self.latest_charge,
            "livemode": False,
            "metadata": dict[str, Json](self.metadata),
            "next_action": None,
            "on_behalf_of": None,
            "payment_method": self.payment_method,
            "payment_method_configuration_details": None,
            "payment_method_options": {
                "card": {
                    "installments": None,
                    "mandate_options": None,
                    "network": None,
                    "request_three_d_secure": "automatic",
                }
            },
            "payment_method_types": list[Json](self.payment_method_types),
            "processing": None,
            "receipt_email": self.receipt_email,
            "review": None,
            "setup_future_usage": None,
            "shipping": None,
            "source": None,
            "statement_descriptor": self.statement_descriptor,
            "statement_descriptor_suffix": self.statement_descriptor_suffix,
            "status": self.status,
            "transfer_data": None,
            "transfer_group": None,
        }
