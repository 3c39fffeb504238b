"""The connection to NATS JetStream: streams, publishing with de-duplication.

One stream holds every event of a namespace; a second holds dead letters. The
broker suppresses a second publish of the same ``Nats-Msg-Id`` inside the
stream's duplicate window, which is what makes the outbox relay's retries safe.
An event's headers also carry the trace context it was published in
(``traceparent``, ``tracestate``: see ``ticketing_common.tracing``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import nats
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import PubAck, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError
from opentelemetry.trace import NoOpTracer, Tracer

from ticketing_common.events.contracts import Envelope, P, Subjects
from ticketing_common.settings import BusSettings
from ticketing_common.tracing import producing

logger = logging.getLogger("ticketing.bus")

MSG_ID = "Nats-Msg-Id"
DUPLICATE_WINDOW_SECONDS = 2 * 60 * 60  # covers any realistic relay retry or restart
EVENT_RETENTION_SECONDS = 14 * 24 * 60 * 60
DEAD_LETTER_RETENTION_SECONDS = 90 * 24 * 60 * 60
PUBLISH_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class Outgoing:
    """One event to publish: its subject, body, de-duplication id and trace parent."""

    subject: str
    body: bytes
    msg_id: str
    event_type: str
    trace_parent: Mapping[str, str] | None = None


def inbox_prefix(client_name: str) -> str:
    """Where a client's replies and pulled events arrive: its own inboxes, so a NATS user
    may be let subscribe to its own and no one else's (``ticketing_common.natsauth``)."""
    return f"_INBOX.{client_name}"


class EventBus:
    """A JetStream connection for one namespace of subjects and streams."""

    def __init__(
        self,
        url: str,
        namespace: str,
        *,
        client_name: str = "ticketing",
        replicas: int = 1,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        self.url = url
        self.user = user
        self.password = password
        self.replicas = replicas  # 3 on a 3-node cluster: a stream survives losing a node
        self.subjects = Subjects(namespace)
        self.client_name = client_name
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        # Set by ticketing_common.tracing.install when the service is traced.
        self.tracer: Tracer = NoOpTracer()

    @classmethod
    def from_settings(cls, settings: BusSettings) -> EventBus:
        return cls(
            settings.NATS_URL,
            settings.NATS_NAMESPACE,
            client_name=settings.SERVICE_NAME,
            replicas=settings.NATS_STREAM_REPLICAS,
            # A service's NATS user is its name unless told otherwise.
            user=settings.NATS_USER or (settings.SERVICE_NAME if settings.NATS_PASSWORD else None),
            password=settings.NATS_PASSWORD,
        )

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise RuntimeError("EventBus is not connected")
        return self._js

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def connect(self) -> EventBus:
        self._nc = await nats.connect(
            self.url,
            name=self.client_name,
            user=self.user,
            password=self.password,
            inbox_prefix=inbox_prefix(self.client_name),
            max_reconnect_attempts=-1,  # a broker restart is an outage, not a crash
            reconnect_time_wait=0.5,
            connect_timeout=5,
        )
        self._js = self._nc.jetstream()
        await self.ensure_streams()
        return self

    async def ensure_streams(self) -> None:
        await self._ensure_stream(
            StreamConfig(
                name=self.subjects.stream,
                subjects=[self.subjects.all_events],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                duplicate_window=DUPLICATE_WINDOW_SECONDS,
                max_age=EVENT_RETENTION_SECONDS,
                num_replicas=self.replicas,
            )
        )
        await self._ensure_stream(
            StreamConfig(
                name=self.subjects.dead_letter_stream,
                subjects=[self.subjects.all_dead_letters],
                retention=RetentionPolicy.LIMITS,
                storage=StorageType.FILE,
                duplicate_window=DUPLICATE_WINDOW_SECONDS,
                max_age=DEAD_LETTER_RETENTION_SECONDS,
                num_replicas=self.replicas,
            )
        )

    async def _ensure_stream(self, config: StreamConfig) -> None:
        try:
            await self.js.add_stream(config)
        except BadRequestError:
            # Another service created it first (possibly with older settings): converge.
            await self.js.update_stream(config)

    async def publish_raw(
        self, subject: str, body: bytes, *, msg_id: str, headers: dict[str, str] | None = None
    ) -> PubAck:
        all_headers = {MSG_ID: msg_id, **(headers or {})}
        return await self.js.publish(
            subject, body, headers=all_headers, timeout=PUBLISH_TIMEOUT_SECONDS
        )

    async def publish_event(
        self,
        subject: str,
        body: bytes,
        *,
        msg_id: str,
        event_type: str,
        trace_parent: Mapping[str, str] | None = None,
    ) -> PubAck:
        """Publish one event in a PRODUCER span, whose context the message headers carry
        to the consumers. Its parent is ``trace_parent`` (the context recorded with the
        event in the outbox) or else the current span."""
        with producing(
            self.tracer, event_type, subject=subject, message_id=msg_id, parent=trace_parent
        ) as headers:
            return await self.publish_raw(subject, body, msg_id=msg_id, headers=headers)

    async def publish_all(
        self, events: Sequence[Outgoing], *, timeout: float = PUBLISH_TIMEOUT_SECONDS
    ) -> list[PubAck | Exception]:
        """Publish events in order without awaiting each ack, then await them all:
        each event's PubAck, or the error (a timeout, a rejection) that it got instead.

        The messages leave in the given order on this one connection, and JetStream
        stores one connection's publishes in the order they arrive; only a publish
        that fails (and is retried later) can end up behind the ones sent after it.
        An error before every event was sent (the connection closed) is raised.
        """
        acks: list[asyncio.Future[PubAck]] = []
        try:
            for event in events:
                # The PRODUCER span covers the send; the ack is awaited with the others.
                with producing(
                    self.tracer,
                    event.event_type,
                    subject=event.subject,
                    message_id=event.msg_id,
                    parent=event.trace_parent,
                ) as headers:
                    acks.append(
                        await self.js.publish_async(
                            event.subject, event.body, headers={MSG_ID: event.msg_id, **headers}
                        )
                    )
            if acks:
                await asyncio.wait(acks, timeout=timeout)
        finally:
            for ack in acks:
                ack.cancel()  # unanswered: frees its place among nats-py's pending publishes
        results: list[PubAck | Exception] = []
        for ack in acks:
            if ack.cancelled():
                results.append(TimeoutError(f"no ack within {timeout} s"))
                continue
            error = ack.exception()
            results.append(ack.result() if error is None else _as_exception(error))
        return results

    async def publish(self, envelope: Envelope[P]) -> PubAck:
        """Publish now. Services publish through the outbox; this is for the relay and tests."""
        return await self.publish_event(
            self.subjects.of(envelope.type),
            envelope.to_json(),
            msg_id=str(envelope.id),
            event_type=envelope.type.value,
        )

    async def pause_consumer(self, durable: str, until: datetime | None) -> bool:
        """Pause a service's consumer of this namespace until ``until`` (None resumes it).

        An operator's tool (hold a service's intake during maintenance) and how the
        race tests hold one event back while others go ahead. Paused messages stay in
        the stream and are delivered, in order, once the consumer resumes. True when
        the consumer is paused afterwards.
        """
        if self._nc is None:
            raise RuntimeError("EventBus is not connected")
        request = {} if until is None else {"pause_until": until.astimezone(UTC).isoformat()}
        subject = f"$JS.API.CONSUMER.PAUSE.{self.subjects.stream}.{durable}"
        reply = json.loads((await self._nc.request(subject, json.dumps(request).encode())).data)
        if "error" in reply:
            raise RuntimeError(f"cannot pause {durable}: {reply['error']}")
        return bool(reply.get("paused"))

    async def close(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            await self._nc.drain()
        self._nc = None
        self._js = None


def _as_exception(error: BaseException) -> Exception:
    return error if isinstance(error, Exception) else RuntimeError(repr(error))
