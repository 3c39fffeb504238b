"""Auth's settings: the shared database, bus and Redis settings, sessions, and the sign-up
and sign-in throttles.

The only place the auth service reads its environment (``UPPER_SNAKE`` names).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from ticketing_common.ratelimit import Rate
from ticketing_common.settings import EventServiceSettings, RedisSettings


class SessionExpiry(StrEnum):
    """How a session's end (``SESSION_TTL_SECONDS``) is counted."""

    ABSOLUTE = "absolute"  # from sign-in: use does not prolong it
    IDLE = "idle"  # from the last renewal: a session in use lives on


class Settings(EventServiceSettings, RedisSettings):
    # Whether a session ends SESSION_TTL_SECONDS after sign-in, or after its last
    # renewal (docs/security.md, "Sessions").
    SESSION_EXPIRY: SessionExpiry = SessionExpiry.ABSOLUTE
    # How often sessions that can no longer be used (ended, every token expired) are deleted.
    SESSION_PRUNE_SECONDS: float = Field(default=3600, gt=0)

    # Failed sign-ins allowed per email and per client address in one window
    # (the rule is in ``throttle.py``). The client limit is higher because many
    # people can share one address (an office NAT, a mobile carrier).
    SIGNIN_MAX_FAILURES_PER_EMAIL: int = Field(default=5, ge=1)
    SIGNIN_MAX_FAILURES_PER_CLIENT: int = Field(default=50, ge=1)
    SIGNIN_WINDOW_SECONDS: int = Field(default=15 * 60, ge=1)
    # How often expired throttle counters are deleted.
    SIGNIN_THROTTLE_PRUNE_SECONDS: float = Field(default=300, gt=0)

    # Every sign-up and every sign-in, successful or not, per client address and per
    # email (``limits`` notation; counted in Redis by every replica, before the
    # password hash). The per-client rates allow for many people behind one address
    # (see docs/security.md, "Throttles").
    SIGNUP_RATE_PER_CLIENT: Rate = "20/hour"
    SIGNUP_RATE_PER_EMAIL: Rate = "5/hour"
    SIGNIN_RATE_PER_CLIENT: Rate = "100/15 minutes"
    SIGNIN_RATE_PER_EMAIL: Rate = "10/15 minutes"
