"""Stripe's test cards: the ``tok_…`` tokens and ``pm_card_…`` payment methods it
documents, and how each one answers a charge.

Only these names are known; any other token or payment method id is "No such
token" / "No such PaymentMethod", as in Stripe's test mode.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Decline:
    """How a declined charge is reported: the error ``code`` and ``decline_code``,
    the message the card holder may be shown, and the charge's outcome."""

    code: str
    decline_code: str
    message: str
    seller_message: str
    outcome_type: str = "issuer_declined"
    network_status: str = "declined_by_network"


@dataclass(frozen=True)
class TestCard:
    brand: str
    last4: str
    funding: str = "credit"
    country: str = "US"
    decline: Decline | None = None

    __test__ = False  # not a pytest test class, whatever its name says


GENERIC_DECLINE = Decline(
    "card_declined",
    "generic_decline",
    "Your card was declined.",
    "The bank did not return any further details with this decline.",
)
INSUFFICIENT_FUNDS = Decline(
    "card_declined",
    "insufficient_funds",
    "Your card has insufficient funds.",
    "The bank returned the decline code `insufficient_funds`.",
)
LOST_CARD = Decline(
    "card_declined",
    "lost_card",
    "Your card was declined.",
    "The bank returned the decline code `lost_card`.",
)
STOLEN_CARD = Decline(
    "card_declined",
    "stolen_card",
    "Your card was declined.",
    "The bank returned the decline code `stolen_card`.",
)
EXPIRED_CARD = Decline(
    "expired_card",
    "expired_card",
    "Your card has expired.",
    "The bank returned the decline code `expired_card`.",
)
INCORRECT_CVC = Decline(
    "incorrect_cvc",
    "incorrect_cvc",
    "Your card's security code is incorrect.",
    "The bank returned the decline code `incorrect_cvc`.",
)
PROCESSING_ERROR = Decline(
    "processing_error",
    "processing_error",
    "An error occurred while processing your card. Try again in a little bit.",
    "The bank returned the decline code `processing_error`.",
)
FRAUDULENT = Decline(
    "card_declined",
    "fraudulent",
    "Your card was declined.",
    "Stripe blocked this payment as too risky.",
    outcome_type="blocked",
    network_status="not_sent_to_network",
)

VISA = TestCard("visa", "4242")
VISA_DEBIT = TestCard("visa", "5556", funding="debit")
MASTERCARD = TestCard("mastercard", "4444")
AMEX = TestCard("amex", "8431")

# Token and PaymentMethod names as Stripe's testing docs spell them.
CARDS: dict[str, TestCard] = {
    "tok_visa": VISA,
    "pm_card_visa": VISA,
    "tok_visa_debit": VISA_DEBIT,
    "pm_card_visa_debit": VISA_DEBIT,
    "tok_mastercard": MASTERCARD,
    "pm_card_mastercard": MASTERCARD,
    "tok_amex": AMEX,
    "pm_card_amex": AMEX,
    "tok_chargeDeclined": TestCard("visa", "0002", decline=GENERIC_DECLINE),
    "pm_card_chargeDeclined": TestCard("visa", "0002", decline=GENERIC_DECLINE),
    "tok_chargeDeclinedInsufficientFunds": TestCard("visa", "9995", decline=INSUFFICIENT_FUNDS),
    "pm_card_visa_chargeDeclinedInsufficientFunds": TestCard(
        "visa", "9995", decline=INSUFFICIENT_FUNDS
    ),
    "tok_chargeDeclinedLostCard": TestCard("visa", "9987", decline=LOST_CARD),
    "pm_card_visa_chargeDeclinedLostCard": TestCard("visa", "9987", decline=LOST_CARD),
    "tok_chargeDeclinedStolenCard": TestCard("visa", "9979", decline=STOLEN_CARD),
    "pm_card_visa_chargeDeclinedStolenCard": TestCard("visa", "9979", decline=STOLEN_CARD),
    "tok_chargeDeclinedExpiredCard": TestCard("visa", "0069", decline=EXPIRED_CARD),
    "pm_card_chargeDeclinedExpiredCard": TestCard("visa", "0069", decline=EXPIRED_CARD),
    "tok_chargeDeclinedIncorrectCvc": TestCard("visa", "0127", decline=INCORRECT_CVC),
    "pm_card_chargeDeclinedIncorrectCvc": TestCard("visa", "0127", decline=INCORRECT_CVC),
    "tok_chargeDeclinedProcessingError": TestCard("visa", "0119", decline=PROCESSING_ERROR),
    "pm_card_chargeDeclinedProcessingError": TestCard("visa", "0119", decline=PROCESSING_ERROR),
    "tok_chargeDeclinedFraudulent": TestCard("visa", "0019", decline=FRAUDULENT),
    "pm_card_chargeDeclinedFraudulent": TestCard("visa", "0019", decline=FRAUDULENT),
}


def token_card(token: str) -> TestCard | None:
    return CARDS.get(token) if token.startswith("tok_") else None


def payment_method_card(name: str) -> TestCard | None:
    return CARDS.get(name) if name.startswith("pm_card_") else None
