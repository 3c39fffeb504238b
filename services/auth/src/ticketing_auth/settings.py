"""Auth's settings: the shared database and bus settings, sessions, sign-in throttling
and proxy trust.

The only place the auth service reads its environment (``UPPER_SNAKE`` names).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from ticketing_common.settings import EventServiceSettings


class SessionExpiry(StrEnum):
    """How a session's end (``SESSION_TTL_SECONDS``) is counted."""

    ABSOLUTE = "absolute"  # from sign-in: use does not prolong it
    IDLE = "idle"  # from the last renewal: a session in use lives on


class Settings(EventServiceSettings):
    SERVICE_NAME: str = "auth"

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

    # True only behind the gateway, which overwrites X-Forwarded-For with the
    # real client; exposed directly, a client could name any address it likes.
    TRUST_PROXY_HEADERS: bool = False
