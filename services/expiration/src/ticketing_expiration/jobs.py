"""The job runner: arq's worker inside the service process, for the app's lifetime.

It polls the service's queue every ``EXPIRATION_POLL_SECONDS`` and runs each due
job, which publishes expiration:complete. Jobs live in Redis, so a job that fell
due while the service was down runs as soon as it is back. A failed publish
raises arq's ``Retry`` with back-off, so the job runs again. Shutdown stops
taking jobs, lets running ones finish, and closes the worker's Redis connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime
from uuid import UUID

from arq.connections import ArqRedis
from arq.worker import Retry, Worker, func

from ticketing_common.backoff import backoff
from ticketing_common.events.bus import EventBus
from ticketing_common.tracing import consuming
from ticketing_expiration import service
from ticketing_expiration.repository import JOB_FUNCTION, JOB_TTL_AFTER_DUE_MS, JobStore
from ticketing_expiration.service import LatenessStats
from ticketing_expiration.settings import Settings

logger = logging.getLogger("ticketing.expiration.jobs")

# A job publishes one message (5 s publish timeout). arq also keeps a running job's
# "in progress" marker this long plus 10 s, so a short timeout bounds how long a job
# interrupted by a crash stays blocked.
JOB_TIMEOUT_SECONDS = 20
# Running jobs get this long to finish at shutdown (within the app's 10 s grace).
SHUTDOWN_GRACE_SECONDS = 5.0
RETRY_BASE_SECONDS = 0.5
RETRY_MAX_SECONDS = 30.0


def retry_delay(attempt: int) -> float:
    """Back-off before try ``attempt + 1``: 0.5 s doubling up to 30 s."""
    return backoff(attempt, RETRY_BASE_SECONDS, RETRY_MAX_SECONDS)


class JobWorker:
    """Runs the service's due jobs; ``run`` is a ``ServiceRuntime`` worker."""

    def __init__(
        self, settings: Settings, store: JobStore, bus: EventBus, stats: LatenessStats
    ) -> None:
        self.settings = settings
        self.store = store
        self.bus = bus
        self.stats = stats
        self.fired = 0
        self.failed_attempts = 0

    async def expire_order(
        self,
        ctx: dict[str, object],
        order_id: str,
        expires_at: str,
        trace_context: dict[str, str] | None = None,
    ) -> None:
        """The job: publish the order's expiration:complete, or retry later.

        It runs in the trace it was scheduled in (``trace_context``, None for a job
        scheduled untraced), so the order's expiration continues its purchase's trace.
        """
        started = datetime.now(UTC)
        attempt = ctx.get("job_try")
        attempt = attempt if isinstance(attempt, int) else 1
        try:
            with consuming(
                self.bus.tracer,
                f"run {JOB_FUNCTION}",
                trace_context,
                attributes={"order_id": order_id, "attempt": attempt},
            ):
                await service.fire_expiration(
                    self.bus,
                    self.stats,
                    order_id=UUID(order_id),
                    expires_at=datetime.fromisoformat(expires_at),
                    started=started,
                    attempt=attempt,
                )
        except Exception as error:
            self.failed_attempts += 1
            delay = retry_delay(attempt)
            logger.warning(
                "expiration publish failed; will retry",
                extra={
                    "order_id": order_id,
                    "attempt": attempt,
                    "delay": delay,
                    "error": repr(error),
                },
            )
            raise Retry(defer=delay) from error
        self.fired += 1

    def worker(self) -> Worker:
        return Worker(
            functions=[func(self.expire_order, name=JOB_FUNCTION, timeout=JOB_TIMEOUT_SECONDS)],
            queue_name=self.store.queue_name,
            redis_settings=self.store.redis_settings,
            poll_delay=self.settings.EXPIRATION_POLL_SECONDS,
            max_jobs=self.settings.EXPIRATION_MAX_JOBS,
            max_tries=self.settings.EXPIRATION_MAX_TRIES,
            # While a result is kept, arq refuses to enqueue its job id again: a late
            # redelivered order:created schedules nothing.
            keep_result=self.settings.EXPIRATION_KEEP_RESULT_SECONDS,
            job_timeout=JOB_TIMEOUT_SECONDS,
            expires_extra_ms=JOB_TTL_AFTER_DUE_MS,
            handle_signals=False,  # uvicorn owns the signals; the app's lifespan stops us
            log_results=False,
        )

    async def run(self, stopping: asyncio.Event) -> None:
        worker = self.worker()
        running = asyncio.create_task(worker.async_run(), name="arq-worker")
        stop = asyncio.create_task(stopping.wait())
        try:
            await asyncio.wait({running, stop}, return_when=asyncio.FIRST_COMPLETED)
            if running.done():
                running.result()  # the worker died (e.g. Redis unreachable): let it restart
        finally:
            stop.cancel()
            await self._shutdown(worker, running)

    async def _shutdown(self, worker: Worker, running: asyncio.Task[None]) -> None:
        worker.allow_pick_jobs = False  # stop taking jobs
        # Let a poll that is starting jobs right now finish starting them.
        await asyncio.sleep(min(self.settings.EXPIRATION_POLL_SECONDS, 0.5))
        in_flight = [task for task in worker.tasks.values() if not task.done()]
        if in_flight:
            await asyncio.wait(in_flight, timeout=SHUTDOWN_GRACE_SECONDS)
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await running
        # A job still running is cancelled; arq puts it back in the queue for next time.
        left = [task for task in worker.tasks.values() if not task.done()]
        for task in left:
            task.cancel()
        if left:
            await asyncio.wait(left)
        await self._close(worker)

    @staticmethod
    async def _close(worker: Worker) -> None:
        """What ``Worker.close`` does once its tasks are done, without redis 5's deprecated
        ``close()``: drop the health-check key, close the worker's own connections."""
        pool: ArqRedis | None = worker.pool  # None when it never got to connect
        with contextlib.suppress(Exception):
            if pool is not None:
                await pool.delete(worker.health_check_key)
                await pool.aclose()  # type: ignore[attr-defined]
