"""What expiration hears: order:created schedules the order's expiration job.

The handler returns, and so the event is acked, only after Redis accepted the job
(or already had it: a redelivered order:created schedules nothing twice). A fetched
batch of order:created is scheduled in one round trip (``Pipelined``): each job is
made under its event's span, so its firing continues that order's trace, and the
batch is acked after Redis answered for all of them.
"""

from __future__ import annotations

from collections.abc import Sequence

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ticketing_common.events.contracts import Envelope, OrderCreated
from ticketing_common.events.listener import Pipelined, RetryLater
from ticketing_expiration import service
from ticketing_expiration.repository import Job, JobStore


def on_order_created(store: JobStore) -> Pipelined[OrderCreated, Job]:
    def job(event: Envelope[OrderCreated]) -> Job:
        return store.job(event.data.id, event.data.expires_at)

    async def schedule(jobs: Sequence[Job]) -> None:
        try:
            await service.schedule_expirations(store, jobs)
        except (RedisConnectionError, RedisTimeoutError, ConnectionError) as error:
            # Redis away is an outage, not a poison message: wait (the longer waiting
            # limit) instead of dead-lettering after a handful of failures.
            raise RetryLater(f"redis unavailable: {error}") from error

    return Pipelined(job, schedule)
