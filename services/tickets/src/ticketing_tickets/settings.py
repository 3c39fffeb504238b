"""Tickets' settings: the shared database and bus settings.

The only place the tickets service reads its environment (``UPPER_SNAKE`` names).
"""

from __future__ import annotations

from ticketing_common.settings import EventServiceSettings


class Settings(EventServiceSettings):
    """Nothing of its own: the shared settings say what tickets needs."""
