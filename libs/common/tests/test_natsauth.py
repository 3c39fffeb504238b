"""NATS users and permissions from the specs, on a real nats-server run with them: each
service, connected as its user, does everything its code does (streams, publishing its
events, its durable consumers, dead letters, following revocations) and is refused
what it does not use."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import nats
import pytest
from nats.aio.client import Client

from ticketing_common.embedded import NatsServer, free_port
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import (
    PAYLOADS,
    Envelope,
    EventType,
    ExpirationComplete,
    OrderCancelled,
    OrderCompleted,
    OrderCreated,
    OrderStatus,
    Payload,
    PaymentCreated,
    PaymentDeclined,
    PaymentRefunded,
    PricedTicketRef,
    SessionRevoked,
    TicketCreated,
    TicketRef,
    TicketUpdated,
    TicketWithdrawn,
    UserCreated,
    decode,
)
from ticketing_common.events.listener import ListenerGroup, RetryPolicy
from ticketing_common.natsauth import (
    ADMIN_USER,
    authorization_config,
    environment_passwords,
    literal_passwords,
    password_variable,
    permissions,
    subject_matches,
    users,
)
from ticketing_common.revocations import RevocationFollower
from ticketing_common.settings import ServiceSettings
from ticketing_common.spec import ServiceSpec, installed_specs
from ticketing_common.testing import wait_until

SPECS = installed_specs()
ON_THE_BUS = [spec for spec in SPECS if spec.uses_nats]
NAMESPACE = f"authz{uuid4().hex[:8]}"


def sample(payload_type: type[Payload], ident: UUID | None = None) -> Payload:
    """An event of each type, with ``ident`` as its id (or order id) if given."""
    ident = ident or uuid4()
    ticket = {"title": "Concert", "price": "20.50", "user_id": uuid4()}
    samples: dict[EventType, Payload] = {
        EventType.TICKET_CREATED: TicketCreated(id=ident, version=0, **ticket),
        EventType.TICKET_UPDATED: TicketUpdated(id=ident, version=1, **ticket),
        EventType.ORDER_CREATED: OrderCreated(
            id=ident,
            version=0,
            status=OrderStatus.CREATED,
            user_id=uuid4(),
            expires_at=datetime.now(UTC) + timedelta(minutes=15),
            ticket=PricedTicketRef(id=uuid4(), price="20.50"),
        ),
        EventType.ORDER_CANCELLED: OrderCancelled(
            id=ident, version=1, ticket=TicketRef(id=uuid4())
        ),
        EventType.EXPIRATION_COMPLETE: ExpirationComplete(order_id=ident),
        EventType.PAYMENT_CREATED: PaymentCreated(id=ident, order_id=uuid4(), stripe_id="ch_1"),
        EventType.PAYMENT_REFUNDED: PaymentRefunded(id=ident, order_id=uuid4(), refund_id="re_1"),
        EventType.SESSION_REVOKED: SessionRevoked(
            id=ident, user_id=uuid4(), expires_at=datetime.now(UTC) + timedelta(minutes=15)
        ),
        EventType.USER_CREATED: UserCreated(id=ident, email="buyer@example.com"),
        EventType.TICKET_WITHDRAWN: TicketWithdrawn(id=ident, version=1, user_id=uuid4()),
        EventType.ORDER_COMPLETED: OrderCompleted(
            id=ident,
            version=0,
            user_id=uuid4(),
            ticket=PricedTicketRef(id=uuid4(), price="20.50"),
        ),
        EventType.PAYMENT_DECLINED: PaymentDeclined(
            id=ident, order_id=uuid4(), user_id=uuid4(), message="Your card was declined."
        ),
    }
    assert set(samples) == set(PAYLOADS)
    return samples[payload_type.event_type]


def ident_of(payload: Payload) -> UUID:
    ident = getattr(payload, "id", None) or getattr(payload, "order_id", None)
    assert isinstance(ident, UUID)
    return ident


@pytest.fixture(scope="module")
def passwords() -> dict[str, str]:
    return {user: secrets.token_hex(16) for user in [ADMIN_USER, *(s.name for s in ON_THE_BUS)]}


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, passwords: dict[str, str]
) -> Iterator[NatsServer]:
    config = authorization_config(SPECS, literal_passwords(passwords), NAMESPACE)
    nats_server = NatsServer("nats", free_port(), tmp_path_factory.mktemp("nats"), config=config)
    nats_server.start()
    try:
        yield nats_server
    finally:
        nats_server.stop()


@pytest.fixture
async def admin(server: NatsServer, passwords: dict[str, str]) -> AsyncIterator[EventBus]:
    bus = EventBus(
        server.url,
        NAMESPACE,
        client_name="operator",
        user=ADMIN_USER,
        password=passwords[ADMIN_USER],
    )
    await bus.connect()
    try:
        yield bus
    finally:
        await bus.close()


def bus_of(spec: ServiceSpec[Any], server: NatsServer, passwords: dict[str, str]) -> EventBus:
    """The bus the app builder makes for ``spec``, as the service's own user."""
    return EventBus(
        server.url, NAMESPACE, client_name=spec.name, user=spec.name, password=passwords[spec.name]
    )


def test_the_installed_services_have_a_user_each_and_only_the_operators_have_all() -> None:
    assert {spec.name for spec in ON_THE_BUS} == {
        "auth",
        "expiration",
        "notifications",
        "orders",
        "payments",
        "tickets",
        "web",
    }
    assert [user.user for user in users(SPECS)] == [spec.name for spec in ON_THE_BUS]
    with pytest.raises(ValueError, match="admin"):
        users(
            [*SPECS, ServiceSpec(name=ADMIN_USER, package="x", title="x", settings=ServiceSettings)]
        )


def test_subject_matching_follows_nats_wildcards() -> None:
    assert subject_matches("a.*.c", "a.b.c")
    assert not subject_matches("a.*", "a.b.c")
    assert subject_matches("a.>", "a.b.c")
    assert not subject_matches("a.>", "a")
    assert not subject_matches("a.b", "a.b.c")


@pytest.mark.parametrize("spec", ON_THE_BUS, ids=lambda spec: spec.name)
async def test_a_service_connected_as_its_user_does_everything_it_needs(
    spec: ServiceSpec[Any],
    server: NatsServer,
    passwords: dict[str, str],
    admin: EventBus,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="nats")
    bus = await bus_of(spec, server, passwords).connect()  # creates or updates the streams
    try:
        await bus.ensure_streams()
        for payload_type in spec.publishes:
            ack = await bus.publish(Envelope.of(sample(payload_type)))
            assert ack.stream == bus.subjects.stream

        # Its listeners: each event handled through its durable consumer, the poisoned
        # one dead-lettered under its name.
        # (The stream also holds the other tests' events: the consumers see them too.)
        poison, good = uuid4(), set[UUID]()
        for payload_type in spec.consumes:
            event = sample(payload_type)
            good.add(ident_of(event))
            await admin.publish(Envelope.of(event))
            await admin.publish(Envelope.of(sample(payload_type, poison)))
        handled: set[UUID] = set()

        async def handle(envelope: Envelope[Any]) -> None:
            if ident_of(envelope.data) == poison:
                raise RuntimeError("poisoned")
            handled.add(ident_of(envelope.data))

        group = ListenerGroup(bus, service=spec.name, policy=RetryPolicy(max_deliveries=1))
        for payload_type in spec.consumes:
            group.add(payload_type, handle)
        stopping = asyncio.Event()
        running = asyncio.create_task(group.run(stopping))
        try:
            expected = len(spec.consumes)
            await wait_until(lambda: good <= handled and group.dead_lettered == expected)
        finally:
            stopping.set()
            await running
        for payload_type in spec.consumes:
            info = await admin.js.consumer_info(
                bus.subjects.stream, group.durable_name(payload_type.event_type)
            )
            assert (info.num_pending, info.num_ack_pending) == (0, 0)
            dead = await admin.js.get_last_msg(
                bus.subjects.dead_letter_stream,
                bus.subjects.dead_letter(spec.name, payload_type.event_type),
            )
            assert ident_of(decode(dead.data or b"", payload_type).data) == poison

        # Its revocation follower: what was revoked before it started, and what is after.
        if spec.follows_revocations:
            before = sample(SessionRevoked)
            await admin.publish(Envelope.of(before))
            follower = RevocationFollower(bus, ServiceSettings(ENVIRONMENT="test"))
            await follower.catch_up()
            assert follower.is_revoked(ident_of(before))
            stopping = asyncio.Event()
            following = asyncio.create_task(follower.follow(stopping))
            try:
                after = sample(SessionRevoked)
                await admin.publish(Envelope.of(after))
                await wait_until(lambda: follower.is_revoked(ident_of(after)))
            finally:
                stopping.set()
                await following
            assert follower.resubscribed == 0
    finally:
        await bus.close()
    refused = [
        str(record.exc_info[1])
        for record in caplog.records
        if record.exc_info and "permissions violation" in str(record.exc_info[1]).lower()
    ]
    assert not refused


class Refusals:
    """A raw client of one user that collects the server's refusals."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.client: Client | None = None

    async def connect(self, url: str, user: str, password: str) -> Client:
        async def on_error(error: Exception) -> None:
            self.errors.append(str(error))

        self.client = await nats.connect(
            url, user=user, password=password, error_cb=on_error, inbox_prefix=f"_INBOX.{user}"
        )
        return self.client

    async def refused(self, what: str, subject: str) -> None:
        """Wait for the server to refuse ``what`` ("Publish", "Subscription") to ``subject``."""
        message = f'permissions violation for {what} to "{subject}"'.lower()
        await wait_until(lambda: any(message in error.lower() for error in self.errors))


@pytest.mark.parametrize("spec", ON_THE_BUS, ids=lambda spec: spec.name)
async def test_a_service_is_refused_what_it_does_not_use(
    spec: ServiceSpec[Any], server: NatsServer, passwords: dict[str, str], admin: EventBus
) -> None:
    subjects = admin.subjects
    others = [other for other in ON_THE_BUS if other.name != spec.name]
    others_durables = [
        ListenerGroup(admin, service=other.name).durable_name(event.event_type)
        for other in others
        for event in other.consumes
    ]
    assert others_durables
    refusals = Refusals()
    client = await refusals.connect(server.url, spec.name, passwords[spec.name])
    try:
        before = (await admin.js.stream_info(subjects.stream)).state.messages
        for payload_type in PAYLOADS.values():
            if payload_type in spec.publishes:
                continue
            subject = subjects.of(payload_type.event_type)
            await client.publish(subject, Envelope.of(sample(payload_type)).to_json())
            await refusals.refused("Publish", subject)
        # What it was refused never reached the stream.
        assert (await admin.js.stream_info(subjects.stream)).state.messages == before

        for subject in [subjects.all_events, "_INBOX.>", *(f"_INBOX.{o.name}.>" for o in others)]:
            await client.subscribe(subject)
            await refusals.refused("Subscription", subject)

        stream = subjects.stream
        for durable in others_durables:
            for subject in (
                f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}",
                f"$JS.API.CONSUMER.INFO.{stream}.{durable}",
                f"$JS.API.CONSUMER.CREATE.{stream}.{durable}.{subjects.of(EventType.ORDER_CREATED)}",
            ):
                await client.publish(subject, b"{}", reply=client.new_inbox())
                await refusals.refused("Publish", subject)
        others_dead = subjects.dead_letter(others[0].name, EventType.ORDER_CREATED)
        for subject in (
            others_dead,
            f"$JS.API.STREAM.DELETE.{stream}",
            f"$JS.API.STREAM.PURGE.{stream}",
            f"$JS.API.CONSUMER.CREATE.{stream}.anyname.{subjects.of(EventType.TICKET_CREATED)}",
        ):
            await client.publish(subject, b"{}", reply=client.new_inbox())
            await refusals.refused("Publish", subject)
    finally:
        await client.close()


def test_each_permission_is_one_the_services_code_uses() -> None:
    """Offline: the allow lists name only the service's own events, consumers and inbox."""
    for spec in ON_THE_BUS:
        granted = permissions(spec, SPECS)
        for event_type in EventType:
            subject = f"ticketing.events.{event_type.subject_suffix}"
            publishes = event_type in {p.event_type for p in spec.publishes}
            assert granted.may_publish(subject) == publishes, (spec.name, subject)
        for other in ON_THE_BUS:
            inbox = f"_INBOX.{other.name}.x"
            assert granted.may_subscribe(inbox) == (other is spec), (spec.name, inbox)


async def test_the_clusters_form_reads_each_password_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    web = next(spec for spec in ON_THE_BUS if spec.name == "web")
    # Led by a letter: nats-server reads the value as a configuration value (a number
    # would not be a password string); see docs/nats-permissions.md.
    password = "p" + secrets.token_hex(16)
    for user in [ADMIN_USER, *(spec.name for spec in ON_THE_BUS)]:
        monkeypatch.setenv(password_variable(user), password if user == "web" else "x" + user)
    config = authorization_config(SPECS, environment_passwords, NAMESPACE)
    assert "$NATS_WEB_PASSWORD" in config
    assert password not in config
    nats_server = NatsServer("nats", free_port(), tmp_path, config=config).start()
    try:
        bus = await bus_of(web, nats_server, {"web": password}).connect()
        await bus.close()
        with pytest.raises(nats.errors.Error):
            await nats.connect(nats_server.url, user="web", password="wrong", allow_reconnect=False)
        assert os.stat(nats_server.config_path).st_mode & 0o777 == 0o600
    finally:
        nats_server.stop()
