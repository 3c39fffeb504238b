"""Expiration's store: one delayed arq job per order in Redis.

The job id is derived from the order id, and arq refuses a job id that already
exists (queued, running, or finished while its result is kept), so scheduling the
same order twice schedules it once. A finished job's result is kept for
``EXPIRATION_KEEP_RESULT_SECONDS`` (a day), far beyond the broker's 2 h duplicate
window; a redelivery later than that would schedule a second job, which is harmless:
it publishes expiration:complete under the same event id, for an order that orders
has long since cancelled or completed, and orders ignores it.

Every Redis command of the service's own lives here; arq's worker (``jobs.py``)
runs the jobs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

from arq.connections import ArqRedis, RedisSettings, create_pool

from ticketing_common.tracing import current_carrier

JOB_FUNCTION = "expire_order"
# arq drops a job key this long after it fell due (its default is one day). A job that
# fell due while the service was down must still be there when it comes back; two weeks
# matches how long the broker keeps the order:created that scheduled it.
JOB_TTL_AFTER_DUE_MS = 14 * 24 * 3600 * 1000


class JobStore:
    """The service's connection to Redis, for scheduling and readiness."""

    def __init__(self, redis_url: str, queue_name: str) -> None:
        self.redis_settings = RedisSettings.from_dsn(redis_url)
        self.queue_name = queue_name
        self._pool: ArqRedis | None = None

    async def connect(self) -> None:
        self._pool = await self.create_pool()

    async def create_pool(self) -> ArqRedis:
        """A new connection pool on the service's queue (the worker takes its own)."""
        return await create_pool(
            self.redis_settings,
            default_queue_name=self.queue_name,
            expires_extra_ms=JOB_TTL_AFTER_DUE_MS,
        )

    @property
    def pool(self) -> ArqRedis:
        if self._pool is None:
            raise RuntimeError("JobStore is not connected")
        return self._pool

    def job_id(self, order_id: UUID) -> str:
        # arq's job and result keys are global to a Redis database; the queue name in
        # the id keeps two namespaces on one Redis from refusing each other's jobs.
        return f"{self.queue_name}:expire:{order_id}"

    async def schedule(self, order_id: UUID, expires_at: datetime) -> bool:
        """Enqueue the order's job to run at ``expires_at``; False if it already exists.

        A time in the past is due at once. The job keeps the trace context it was
        scheduled in (order:created's handling), so its firing continues that trace.
        """
        due_in = expires_at - datetime.now(UTC)
        job = await self.pool.enqueue_job(
            JOB_FUNCTION,
            str(order_id),
            expires_at.isoformat(),
            trace_context=current_carrier(),
            _job_id=self.job_id(order_id),
            _defer_until=expires_at,
            # Explicit, because arq's default (due + extra) is negative for an expiresAt
            # older than the extra, which Redis refuses (a replayed, old order:created).
            _expires=max(due_in, timedelta(0)) + timedelta(milliseconds=JOB_TTL_AFTER_DUE_MS),
        )
        return job is not None

    async def pending(self) -> int:
        """Jobs in the queue (deferred, due or running)."""
        return int(await self.pool.zcard(self.queue_name))

    async def ping(self) -> None:
        """Raise if Redis does not answer (for ``/readyz``)."""
        try:
            answered = await self.pool.ping()
        except Exception as error:
            raise ConnectionError("redis unreachable") from error
        if not answered:
            raise ConnectionError("redis unreachable")

    async def close(self) -> None:
        if self._pool is not None:
            # types-redis describes redis 4, which had no aclose (redis 5 deprecates close).
            await self._pool.aclose()  # type: ignore[attr-defined]
            self._pool = None
