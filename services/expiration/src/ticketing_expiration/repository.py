"""Expiration's store: one delayed arq job per order in Redis.

The job id is derived from the order id, and a job id that already exists (queued,
running, or finished while its result is kept) is refused, so scheduling the same
order twice schedules it once. The job is written as arq's ``enqueue_job`` writes it
(the same keys, encoding and expiry, which arq's worker reads), but by one Lua
script: one round trip instead of arq's watch, check and transaction. A finished
job's result is kept for ``EXPIRATION_KEEP_RESULT_SECONDS`` (a day), far beyond the
broker's 2 h duplicate window; a redelivery later than that would schedule a second
job, which is harmless: it publishes expiration:complete under the same event id,
for an order that orders has long since cancelled or completed, and orders ignores it.

Every Redis command of the service's own lives here; arq's worker (``jobs.py``)
runs the jobs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import job_key_prefix, result_key_prefix
from arq.jobs import serialize_job
from arq.utils import timestamp_ms, to_unix_ms
from redis.exceptions import NoScriptError

from ticketing_common.tracing import current_carrier

JOB_FUNCTION = "expire_order"
# arq drops a job key this long after it fell due (its default is one day). A job that
# fell due while the service was down must still be there when it comes back; two weeks
# matches how long the broker keeps the order:created that scheduled it.
JOB_TTL_AFTER_DUE_MS = 14 * 24 * 3600 * 1000

# arq's enqueue check and write, atomic as a script runs alone: the job unless its id
# is queued, running or kept as a result (a redelivered order:created), then its due
# time in the queue. KEYS: job, result, queue. ARGV: expiry ms, job, score, job id.
ENQUEUE_UNLESS_KNOWN = """
if redis.call('EXISTS', KEYS[1], KEYS[2]) > 0 then
    return 0
end
redis.call('PSETEX', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
return 1
"""
# The script's name in Redis: it is sent by its digest (EVALSHA), and loaded again
# whenever Redis lost it (a restart). Its SHA-1, as Redis computes it.
ENQUEUE_DIGEST = hashlib.sha1(ENQUEUE_UNLESS_KNOWN.encode(), usedforsecurity=False).hexdigest()


@dataclass(frozen=True)
class Job:
    """An order's expiration job, as the enqueue script takes it."""

    order_id: UUID
    expires_at: datetime
    keys: tuple[str, str, str]  # job, result, queue
    args: tuple[int, bytes, int, str]  # expiry ms, job, score, job id


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

    def job(self, order_id: UUID, expires_at: datetime) -> Job:
        """The order's job to run at ``expires_at``, ready to schedule. A time in the past
        is due at once. The job keeps the trace context it is made in (order:created's
        handling), so its firing continues that trace."""
        job_id = self.job_id(order_id)
        enqueued_ms = timestamp_ms()
        due_ms = to_unix_ms(expires_at)
        # Explicit, because arq's default (due + extra) is negative for an expiresAt
        # older than the extra, which Redis refuses (a replayed, old order:created).
        expires_ms = max(due_ms - enqueued_ms, 0) + JOB_TTL_AFTER_DUE_MS
        body = serialize_job(
            JOB_FUNCTION,
            (str(order_id), expires_at.isoformat()),
            {"trace_context": current_carrier()},
            None,
            enqueued_ms,
            serializer=self.pool.job_serializer,
        )
        return Job(
            order_id=order_id,
            expires_at=expires_at,
            keys=(job_key_prefix + job_id, result_key_prefix + job_id, self.queue_name),
            args=(expires_ms, body, due_ms, job_id),
        )

    async def schedule(self, order_id: UUID, expires_at: datetime) -> bool:
        """Enqueue the order's job to run at ``expires_at``; False if it already exists."""
        return (await self.schedule_all([self.job(order_id, expires_at)]))[0]

    async def schedule_all(self, jobs: Sequence[Job]) -> list[bool]:
        """Enqueue each job unless it already exists (True where it was new): one round
        trip for them all, a pipeline of the enqueue script's calls. Each call is atomic
        and refuses a known job, so running them again is harmless."""
        for _ in range(2):
            async with self.pool.pipeline(transaction=False) as pipe:
                for job in jobs:
                    pipe.evalsha(ENQUEUE_DIGEST, len(job.keys), *job.keys, *job.args)
                answers = await pipe.execute(raise_on_error=False)
            if not any(isinstance(answer, NoScriptError) for answer in answers):
                break
            # Redis lost the script (a restart): load it, and send the lot again.
            await self.pool.script_load(ENQUEUE_UNLESS_KNOWN)  # type: ignore[no-untyped-call]
        for answer in answers:
            if isinstance(answer, Exception):
                raise answer
        return [bool(answer) for answer in answers]

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
