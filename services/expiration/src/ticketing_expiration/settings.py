"""Expiration's settings: the shared bus settings plus Redis and the job worker's knobs.

The only place the expiration service reads its environment (``UPPER_SNAKE`` names).
It owns no database: its state is the delayed jobs in Redis.
"""

from __future__ import annotations

from pydantic import Field

from ticketing_common.settings import BusSettings, RedisSettings


class Settings(BusSettings, RedisSettings):
    # The arq queue (a sorted set in Redis). Empty: derived from NATS_NAMESPACE, so two
    # namespaces sharing one Redis (tests, tenants) never run each other's jobs.
    EXPIRATION_QUEUE: str = ""
    # How often the worker looks for due jobs. Lateness is bounded by it (arq's default
    # of 0.5 s makes a firing up to half a second late; see docs/benchmarks.md).
    EXPIRATION_POLL_SECONDS: float = Field(default=0.1, gt=0, le=60)
    # Jobs run at once. A due batch larger than this waits for the next poll.
    EXPIRATION_MAX_JOBS: int = Field(default=100, ge=1)
    # A job whose publish fails is retried with back-off (capped at 30 s); this many
    # tries is about a day of broker outage before a job is given up.
    EXPIRATION_MAX_TRIES: int = Field(default=3000, ge=1)
    # How long a finished job's result is kept. While it exists, a redelivered
    # order:created schedules nothing; it outlasts the broker's 2 h duplicate window.
    EXPIRATION_KEEP_RESULT_SECONDS: int = Field(default=24 * 3600, ge=1)
    # Lateness statistics (GET /stats) cover this many most recent firings.
    EXPIRATION_STATS_WINDOW: int = Field(default=10_000, ge=1)

    @property
    def queue_name(self) -> str:
        return self.EXPIRATION_QUEUE or f"ticketing:{self.NATS_NAMESPACE}:expiration"
