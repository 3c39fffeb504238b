"""Payments' throttle: attempts to charge a card, per order and per user, in Redis.

A card tester (stolen numbers tried one after another) and a buyer's script
retrying a declined card both end at Stripe, which charges fees for declines and
flags accounts with many. So every attempt that would confirm a charge is counted
per order [5 per 10 minutes] and per user [20 per hour] (settings
``PAYMENT_RATE_PER_*``), and refused with 429 and ``Retry-After`` once over.

Only an attempt that is about to charge is counted (``service.pay`` asks after it
has found the order payable): a declined card counts, but a retry that is
answered from what is recorded — the payment an earlier, crashed request made
(201), "already paid" (409), "in progress" (409), a cancelled order (400) — is
never counted nor refused, so a buyer who was charged always gets that answer.
(Two requests racing for one order may both be counted before one of them finds
the other's attempt in progress.) The user is counted first: an attempt refused
for the user is not counted against the order.
"""

from __future__ import annotations

from uuid import UUID

from ticketing_common.ratelimit import Limit, RateLimiter
from ticketing_payments.settings import Settings

TOO_MANY_PAYMENTS = "Too many payment attempts, try again later"


class PaymentThrottle:
    def __init__(self, limiter: RateLimiter, settings: Settings) -> None:
        self.limiter = limiter
        self.per_user = Limit(
            "payments-per-user", settings.PAYMENT_RATE_PER_USER, TOO_MANY_PAYMENTS
        )
        self.per_order = Limit(
            "payments-per-order", settings.PAYMENT_RATE_PER_ORDER, TOO_MANY_PAYMENTS
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> PaymentThrottle:
        return cls(RateLimiter.of_service(settings), settings)

    async def attempt(self, *, user_id: UUID, order_id: UUID) -> None:
        """Count an attempt to charge; 429 when the user or the order is over its rate."""
        await self.limiter.hit_in_order(
            (self.per_user, (str(user_id),)), (self.per_order, (str(order_id),))
        )

    async def close(self) -> None:
        await self.limiter.close()
