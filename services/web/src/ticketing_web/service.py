"""The web client's page rules: where to go after signing in, what an order page offers,
how money and time read. Pure functions over what the APIs returned."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from urllib.parse import urlsplit

from ticketing_common.events.contracts import CancelReason, OrderStatus
from ticketing_web.schemas import ListingStatus, OrderRead

DEFAULT_NEXT = "/"


def safe_next(target: str | None) -> str:
    """``target`` if it is a path on this site, else the landing page.

    Only relative paths pass: ``//evil.example`` (scheme-relative), ``/\\evil``
    (which browsers read as ``//``) and anything with a scheme or host would send a
    freshly signed-in visitor to another site (an open redirect).
    """
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return DEFAULT_NEXT
    if any(ord(char) < 0x20 or char == "\\" for char in target):
        return DEFAULT_NEXT
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return DEFAULT_NEXT
    return target


def format_money(amount: Decimal) -> str:
    """``Decimal("1234.5")`` → ``"$1,234.50"`` (prices are USD)."""
    return f"${amount.quantize(Decimal('0.01')):,}"


def format_time(moment: datetime) -> str:
    """An instant as the door and the buyer read it: ``2026-05-01 20:15:07 UTC``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class OrderState(StrEnum):
    """What the order page offers; derived from the order's status and the clock."""

    PAYABLE = "payable"
    COMPLETE = "complete"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    REFUNDED = "refunded"
    WITHDRAWN = "withdrawn"

    @property
    def label(self) -> str:
        return _LABELS[self]


_LABELS = {
    OrderState.PAYABLE: "Awaiting payment",
    OrderState.COMPLETE: "Complete",
    OrderState.EXPIRED: "Expired",
    OrderState.CANCELLED: "Cancelled",
    OrderState.REFUNDED: "Refunded",
    OrderState.WITHDRAWN: "Withdrawn by the seller",
}

# A cancelled order, by the reason orders gives.
_CANCELLED = {
    CancelReason.CANCELLED: OrderState.CANCELLED,
    CancelReason.EXPIRED: OrderState.EXPIRED,
    CancelReason.REFUNDED: OrderState.REFUNDED,
    CancelReason.WITHDRAWN: OrderState.WITHDRAWN,
}

LISTING_LABELS = {
    ListingStatus.FOR_SALE: "For sale",
    ListingStatus.RESERVED: "Reserved",
    ListingStatus.SOLD: "Sold",
    ListingStatus.WITHDRAWN: "Withdrawn",
}


@dataclass(frozen=True)
class OrderView:
    order: OrderRead
    state: OrderState
    seconds_left: int

    @property
    def time_left(self) -> str:
        minutes, seconds = divmod(self.seconds_left, 60)
        return f"{minutes}:{seconds:02d}"

    @property
    def refundable(self) -> bool:
        """Offered while complete and unused; orders decides the refund period (409)."""
        admission = self.order.admission
        return (
            self.state is OrderState.COMPLETE
            and admission is not None
            and admission.checked_in_at is None
        )


def order_view(order: OrderRead, now: datetime) -> OrderView:
    """The order as the buyer should see it now.

    An order past its ``expiresAt`` reads as expired even before the expiration
    service has cancelled it: the window is over, a payment would be refused.
    A cancelled order says why (``cancelReason``); without a reason, one whose
    window had run out was cancelled by the expiration.
    """
    seconds_left = max(0, math.ceil((order.expires_at - now).total_seconds()))
    if order.status is OrderStatus.COMPLETE:
        state = OrderState.COMPLETE
    elif order.status is OrderStatus.CANCELLED and order.cancel_reason is not None:
        state = _CANCELLED[order.cancel_reason]
    elif order.status is OrderStatus.CANCELLED:
        state = OrderState.EXPIRED if seconds_left == 0 else OrderState.CANCELLED
    elif seconds_left == 0:
        state = OrderState.EXPIRED
    else:
        state = OrderState.PAYABLE
    return OrderView(order, state, seconds_left if state is OrderState.PAYABLE else 0)
