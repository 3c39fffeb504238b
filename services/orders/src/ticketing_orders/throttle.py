"""The rate of order creation, per buyer and per client address (docs/security.md).

Counted in Redis by the shared ``RateLimiter``, so every replica of orders shares
the counts. The buyer's count is taken first: a buyer who is refused for going too
fast uses up nothing of the allowance of the others behind the same address.
Without Redis the rates are not enforced; the cap on open orders (in PostgreSQL)
still holds.
"""

from __future__ import annotations

from uuid import UUID

from fastapi import Request

from ticketing_common.ratelimit import Limit, RateLimiter, client_address
from ticketing_orders.settings import Settings

PER_USER_MESSAGE = "You are reserving tickets too quickly. Please wait a moment and try again."
PER_CLIENT_MESSAGE = (
    "Too many reservations are coming from your network. Please wait a moment and try again."
)


class OrderThrottle:
    def __init__(self, settings: Settings) -> None:
        self.limiter = RateLimiter.of_service(settings)
        self.per_user = Limit("orders-per-user", settings.ORDER_RATE_PER_USER, PER_USER_MESSAGE)
        self.per_client = Limit(
            "orders-per-client", settings.ORDER_RATE_PER_CLIENT, PER_CLIENT_MESSAGE
        )
        self.trust_proxy_headers = settings.TRUST_PROXY_HEADERS
        # The web client vouches for its visitor's address, so buyers on the pages
        # are counted apart, not all as the web server.
        self.vouching_key = settings.JWT_KEY

    async def order_attempt(self, request: Request, user_id: UUID) -> None:
        """Count one order creation; 429 with ``Retry-After`` when a rate is exceeded.
        Both counts in one round trip, the buyer's first."""
        client = client_address(
            request, trust_proxy_headers=self.trust_proxy_headers, vouching_key=self.vouching_key
        )
        await self.limiter.hit_in_order(
            (self.per_user, (str(user_id),)), (self.per_client, (client,))
        )

    async def close(self) -> None:
        await self.limiter.close()
