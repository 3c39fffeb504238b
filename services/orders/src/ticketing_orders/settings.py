"""Orders' settings: the shared database, bus and Redis settings, the reservation window,
the fair-hold limits, the units per order and the refund period.

The only place the orders service reads its environment (``UPPER_SNAKE`` names).
"""

from __future__ import annotations

from pydantic import Field

from ticketing_common.ratelimit import Rate
from ticketing_common.settings import EventServiceSettings, OrderSizeSettings, RedisSettings


class Settings(EventServiceSettings, RedisSettings, OrderSizeSettings):
    # How long a new order holds its ticket before it expires (15 minutes; 30 s in demos).
    EXPIRATION_WINDOW_SECONDS: int = Field(default=900, gt=0)

    # Fair holds (docs/security.md). Open orders (created or awaiting payment) one
    # buyer may hold at once; enforced in PostgreSQL, so it holds without Redis too.
    MAX_OPEN_ORDERS_PER_USER: int = Field(default=4, ge=1)
    # Order creations allowed per buyer and per client address (``limits`` notation,
    # counted in Redis, shared by every replica). The client rate is higher because
    # many buyers can share one address (an office NAT, a mobile carrier).
    ORDER_RATE_PER_USER: Rate = "10/minute"
    ORDER_RATE_PER_CLIENT: Rate = "60/minute"
    # After a buyer's order is cancelled (by them or by its expiry), how long before
    # the same buyer may order that ticket again: others get their chance at it.
    REORDER_COOLDOWN_SECONDS: int = Field(default=180, ge=0)

    # How long after paying a buyer may refund an order that was not checked in
    # (POST /api/orders/{id}/refund; 7 days).
    REFUND_WINDOW_SECONDS: int = Field(default=604800, ge=0)
