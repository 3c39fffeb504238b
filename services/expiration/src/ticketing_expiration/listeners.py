"""What expiration hears: order:created schedules the order's expiration job.

The handler returns, and so the event is acked, only after Redis accepted the job
(or already had it: a redelivered order:created schedules nothing twice).
"""

from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ticketing_common.events.contracts import Envelope, OrderCreated
from ticketing_common.events.listener import Handler, RetryLater
from ticketing_expiration import service
from ticketing_expiration.repository import JobStore


def on_order_created(store: JobStore) -> Handler[OrderCreated]:
    async def handle(event: Envelope[OrderCreated]) -> None:
        try:
            await service.schedule_expiration(store, event.data)
        except (RedisConnectionError, RedisTimeoutError, ConnectionError) as error:
            # Redis away is an outage, not a poison message: wait (the longer waiting
            # limit) instead of dead-lettering after a handful of failures.
            raise RetryLater(f"redis unavailable: {error}") from error

    return handle
