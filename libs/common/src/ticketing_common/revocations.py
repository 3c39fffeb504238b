"""Revoked sessions, followed by every process that verifies session tokens.

Auth publishes ``session:revoked`` when a session ends before its tokens expire
(sign-out, sign-out everywhere). Each process keeps the revoked session ids in
memory until the session's last token would have expired anyway, and the shared
session dependency refuses them: tokens are still verified locally, with no call
to auth per request.

Every replica of every service needs every revocation, so each process reads
them through its own ephemeral consumer, not a durable one shared by a service's
replicas (which would hand each event to one of them). On start it replays what
can still matter: a revocation published longer ago than a token lives
(``SESSION_TOKEN_TTL_SECONDS``) names only expired tokens. The replay finishes
before the service accepts a connection, so a restarted replica never serves a
revoked token. Then it follows live. A consumer lost to a broker restart or a
long disconnect is made again from the last event read; meanwhile the ids already
known are still refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from uuid import UUID

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import FetchTimeoutError
from pydantic import ValidationError

from ticketing_common.backoff import backoff
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import SessionRevoked, decode
from ticketing_common.events.listener import fetch_unless_stopping
from ticketing_common.settings import ServiceSettings

logger = logging.getLogger("ticketing.revocations")

# Covers clock skew between the broker, which stamps the stream's times, and auth,
# which sets the tokens' expiry.
REPLAY_MARGIN_SECONDS = 60
# A start that cannot replay within this fails, and the process is restarted.
CATCH_UP_TIMEOUT_SECONDS = 30.0
# Replaying takes what is there in batches. Following asks for one event at a time:
# nats-py's batch fetch, once an event has come, waits for the rest of the batch
# until its timeout, which would hold every revocation back for most of a second.
REPLAY_BATCH = 256
# A fetch waits this long for events (and so does a shutdown, at most); the broker's
# heartbeats during the wait tell an idle consumer from a lost one.
FETCH_WAIT_SECONDS = 1.0
HEARTBEAT_SECONDS = 0.25
# The broker drops a consumer nobody fetched from for this long (e.g. after its
# process died); well above the fetch wait.
INACTIVE_THRESHOLD_SECONDS = 60.0
RESUBSCRIBE_FIRST_DELAY = 0.2
RESUBSCRIBE_MAX_DELAY = 5.0
PRUNE_INTERVAL_SECONDS = 30.0


class RevocationFollower:
    """The revoked sessions this process knows of, kept current from the bus.

    ``catch_up`` runs at start-up (before the server listens), ``follow`` for the
    app's lifetime; ``is_revoked`` is what the session dependency asks.
    """

    def __init__(self, bus: EventBus, settings: ServiceSettings) -> None:
        self.bus = bus
        self.replay_window = timedelta(seconds=settings.SESSION_TOKEN_TTL_SECONDS)
        self._revoked: dict[UUID, datetime] = {}
        self._subscription: JetStreamContext.PullSubscription | None = None
        self._last_sequence = 0  # stream sequence of the last event read; 0 before any
        self._last_prune = datetime.now(UTC)
        self.caught_up = False
        self.resubscribed = 0  # consumers made again after one was lost

    def __len__(self) -> int:
        return len(self._revoked)

    def is_revoked(self, session_id: UUID) -> bool:
        expires_at = self._revoked.get(session_id)
        return expires_at is not None and expires_at > datetime.now(UTC)

    def revoke(self, event: SessionRevoked) -> None:
        if event.expires_at <= datetime.now(UTC):
            return  # its tokens are refused as expired already
        known = self._revoked.get(event.id)
        # Sign-out and sign-out everywhere may both name a session: keep the later expiry.
        if known is None or event.expires_at > known:
            self._revoked[event.id] = event.expires_at

    def prune(self) -> int:
        """Forget revocations whose tokens have all expired; how many were dropped."""
        now = datetime.now(UTC)
        expired = [sid for sid, expires_at in self._revoked.items() if expires_at <= now]
        for sid in expired:
            del self._revoked[sid]
        self._last_prune = now
        return len(expired)

    async def check_ready(self) -> None:
        if not self.caught_up:
            raise RuntimeError("session revocations not replayed yet")

    async def catch_up(self) -> None:
        """Read every revocation that can still matter, as of now; an on-start hook."""
        async with asyncio.timeout(CATCH_UP_TIMEOUT_SECONDS):
            subscription = await self._subscribe()
            pending = (await subscription.consumer_info()).num_pending or 0
            while pending > 0:
                try:
                    messages = await subscription.fetch(REPLAY_BATCH, timeout=FETCH_WAIT_SECONDS)
                except TimeoutError:
                    continue  # the deadline above bounds the wait
                for message in messages:
                    self._apply(message)
                    pending = message.metadata.num_pending or 0
        self.caught_up = True
        logger.info("session revocations replayed", extra={"revoked": len(self._revoked)})

    async def follow(self, stopping: asyncio.Event) -> None:
        """Apply revocations as they are published until ``stopping`` is set (a worker)."""
        failures = 0
        try:
            while not stopping.is_set():
                if datetime.now(UTC) - self._last_prune > timedelta(seconds=PRUNE_INTERVAL_SECONDS):
                    self.prune()
                try:
                    subscription = self._subscription or await self._resubscribe()
                    messages = await fetch_unless_stopping(
                        subscription.fetch(
                            1, timeout=FETCH_WAIT_SECONDS, heartbeat=HEARTBEAT_SECONDS
                        ),
                        stopping,
                    )
                except FetchTimeoutError:
                    failures = 0  # heartbeats came: the consumer is there, nothing happened
                    continue
                except Exception as error:
                    # No heartbeat (the consumer is gone, or the broker unreachable) or a
                    # failed resubscribe: make the consumer again, backing off meanwhile.
                    failures += 1
                    await self._drop_subscription()
                    logger.warning(
                        "revocation consumer lost; resubscribing",
                        extra={"error": repr(error), "attempt": failures},
                    )
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(
                            stopping.wait(),
                            backoff(failures, RESUBSCRIBE_FIRST_DELAY, RESUBSCRIBE_MAX_DELAY),
                        )
                    continue
                failures = 0
                for message in messages:
                    self._apply(message)
        finally:
            await self._drop_subscription()

    def _apply(self, message: Msg) -> None:
        self._last_sequence = message.metadata.sequence.stream
        try:
            event = decode(message.data, SessionRevoked).data
        except ValidationError:
            # Nobody acks or redelivers here; a malformed revocation can only be logged.
            logger.error("invalid session:revoked event", extra={"sequence": self._last_sequence})
            return
        self.revoke(event)

    async def _resubscribe(self) -> JetStreamContext.PullSubscription:
        subscription = await self._subscribe()
        self.resubscribed += 1
        return subscription

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        config = ConsumerConfig(
            ack_policy=AckPolicy.NONE,
            inactive_threshold=INACTIVE_THRESHOLD_SECONDS,
            # The consumer is this process's alone and remade at will: no need to persist it.
            mem_storage=True,
            num_replicas=1,
        )
        if self._last_sequence:
            # Where the lost consumer stopped: nothing is skipped, nothing read twice.
            config.deliver_policy = DeliverPolicy.BY_START_SEQUENCE
            config.opt_start_seq = self._last_sequence + 1
        else:
            config.deliver_policy = DeliverPolicy.BY_START_TIME
            config.opt_start_time = (
                datetime.now(UTC) - self.replay_window - timedelta(seconds=REPLAY_MARGIN_SECONDS)
            )
        self._subscription = await self.bus.js.pull_subscribe(
            self.bus.subjects.of(SessionRevoked.event_type),
            stream=self.bus.subjects.stream,
            config=config,
        )
        return self._subscription

    async def _drop_subscription(self) -> None:
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            with contextlib.suppress(Exception):
                await subscription.unsubscribe()
