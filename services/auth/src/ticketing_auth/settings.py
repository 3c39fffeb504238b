"""Auth's settings: the shared database settings plus sign-in throttling.

The only place the auth service reads its environment (``UPPER_SNAKE`` names).
"""

from __future__ import annotations

from pydantic import Field

from ticketing_common.settings import DatabaseSettings


class Settings(DatabaseSettings):
    SERVICE_NAME: str = "auth"

    # Failed sign-ins allowed per email and per client address in one window
    # (the rule is in ``throttle.py``). The client limit is higher because many
    # people can share one address (an office NAT, a mobile carrier).
    SIGNIN_MAX_FAILURES_PER_EMAIL: int = Field(default=5, ge=1)
    SIGNIN_MAX_FAILURES_PER_CLIENT: int = Field(default=50, ge=1)
    SIGNIN_WINDOW_SECONDS: int = Field(default=15 * 60, ge=1)
    # How often expired throttle counters are deleted.
    SIGNIN_THROTTLE_PRUNE_SECONDS: float = Field(default=300, gt=0)
