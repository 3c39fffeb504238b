"""Orders' settings: the shared database and bus settings plus the reservation window.

The only place the orders service reads its environment (``UPPER_SNAKE`` names).
"""

from __future__ import annotations

from pydantic import Field

from ticketing_common.settings import EventServiceSettings


class Settings(EventServiceSettings):
    SERVICE_NAME: str = "orders"

    # How long a new order holds its ticket before it expires (15 minutes; 30 s in demos).
    EXPIRATION_WINDOW_SECONDS: int = Field(default=900, gt=0)
