"""The revocation follower against real NATS: replay, live following, pruning, outages."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from uuid import uuid4

import httpx
import pytest
from fastapi import APIRouter

from ticketing_common.app import ServiceRuntime, create_service_app
from ticketing_common.embedded import NatsServer
from ticketing_common.events.bus import EventBus
from ticketing_common.revocations import RevocationFollower
from ticketing_common.session import CurrentUser, RequiredUser
from ticketing_common.settings import BusSettings
from ticketing_common.testing import revoke_session, serve_app, signed_in_cookie, wait_until


def make_settings(nats_url: str, namespace: str) -> BusSettings:
    return BusSettings(
        ENVIRONMENT="test",
        JWT_KEY="a-test-signing-key-of-at-least-32-bytes",
        NATS_URL=nats_url,
        NATS_NAMESPACE=namespace,
    )


@contextlib.asynccontextmanager
async def following(follower: RevocationFollower) -> AsyncIterator[RevocationFollower]:
    """The follower replayed and following, as a service runs it."""
    await follower.catch_up()
    stopping = asyncio.Event()
    task = asyncio.create_task(follower.follow(stopping))
    try:
        yield follower
    finally:
        stopping.set()
        await task


async def test_not_ready_until_replayed_then_follows_live(
    bus: EventBus, nats_url: str, namespace: str
) -> None:
    before, after, unrelated = uuid4(), uuid4(), uuid4()
    await revoke_session(bus, before)
    follower = RevocationFollower(bus, make_settings(nats_url, namespace))
    with pytest.raises(RuntimeError, match="not replayed"):
        await follower.check_ready()

    async with following(follower):
        await follower.check_ready()
        assert follower.is_revoked(before)  # published before the start: replayed
        await revoke_session(bus, after)
        await wait_until(lambda: follower.is_revoked(after))
        assert not follower.is_revoked(unrelated)


async def test_expired_revocations_are_dropped(
    bus: EventBus, nats_url: str, namespace: str
) -> None:
    short, long, already_expired = uuid4(), uuid4(), uuid4()
    follower = RevocationFollower(bus, make_settings(nats_url, namespace))
    async with following(follower):
        await revoke_session(bus, short, expires_in=timedelta(seconds=1))
        await revoke_session(bus, already_expired, expires_in=timedelta(seconds=-1))
        await revoke_session(bus, long)
        await wait_until(lambda: follower.is_revoked(long))  # all three were read, in order
        assert follower.is_revoked(short)
        assert len(follower) == 2  # the expired one was never kept

        # Once its tokens have expired the revocation is no longer needed, then forgotten.
        await wait_until(lambda: not follower.is_revoked(short), timeout=5)
        assert follower.prune() == 1
        assert len(follower) == 1
        assert follower.is_revoked(long)


async def test_the_later_expiry_of_a_session_wins(
    bus: EventBus, nats_url: str, namespace: str
) -> None:
    session = uuid4()
    follower = RevocationFollower(bus, make_settings(nats_url, namespace))
    async with following(follower):
        await revoke_session(bus, session, expires_in=timedelta(hours=1))
        await wait_until(lambda: follower.is_revoked(session))
        await revoke_session(bus, session, expires_in=timedelta(seconds=1))
        other = uuid4()
        await revoke_session(bus, other)
        await wait_until(lambda: follower.is_revoked(other))  # both were read, in order
        await asyncio.sleep(1.2)
        assert follower.is_revoked(session)


async def test_keeps_refusing_through_a_broker_restart_and_follows_again(
    own_nats: NatsServer, namespace: str
) -> None:
    settings = make_settings(own_nats.url, namespace)
    bus = await EventBus.from_settings(settings).connect()
    try:
        first, second = uuid4(), uuid4()
        follower = RevocationFollower(bus, settings)
        async with following(follower):
            await revoke_session(bus, first)
            await wait_until(lambda: follower.is_revoked(first))

            await asyncio.to_thread(own_nats.stop)
            await wait_until(lambda: not bus.connected)
            assert follower.is_revoked(first)  # what it knows is still refused

            await asyncio.to_thread(own_nats.start)  # same port, same stored stream
            await wait_until(lambda: bus.connected, timeout=30)
            # The consumer died with the broker: the follower makes a new one.
            await wait_until(lambda: follower.resubscribed >= 1, timeout=30)
            await revoke_session(bus, second)
            await wait_until(lambda: follower.is_revoked(second), timeout=30)
            assert follower.is_revoked(first)
    finally:
        await bus.close()


router = APIRouter()


@router.get("/me")
async def me(user: CurrentUser) -> dict[str, str | None]:
    return {"email": user.email if user else None}


@router.get("/private")
async def private(user: RequiredUser) -> dict[str, str]:
    return {"email": user.email}


async def test_the_session_dependency_refuses_a_revoked_session(
    bus: EventBus, nats_url: str, namespace: str
) -> None:
    settings = make_settings(nats_url, namespace)
    app_bus = EventBus.from_settings(settings)
    runtime = ServiceRuntime(bus=app_bus, revocations=RevocationFollower(app_bus, settings))
    app = create_service_app(
        settings=settings, title="probe", routers=[router], runtime=runtime, configure_logs=False
    )
    revoked_session = uuid4()
    revoked = signed_in_cookie(settings, session_id=revoked_session)
    kept = signed_in_cookie(settings)
    async with (
        serve_app(app) as served,
        served.client(cookies=revoked) as revoked_client,
        served.client(cookies=kept) as kept_client,
    ):
        for client in (revoked_client, kept_client):
            assert (await client.get("/private")).status_code == 200
        await revoke_session(bus, revoked_session)

        async def refused() -> bool:
            return (await revoked_client.get("/private")).status_code == 401

        await wait_until(refused)
        assert (await revoked_client.get("/me")).json() == {"email": None}
        assert (await kept_client.get("/private")).status_code == 200
        assert (await kept_client.get("/readyz")).status_code == 200


async def test_an_app_without_a_follower_verifies_as_before(nats_url: str, namespace: str) -> None:
    settings = make_settings(nats_url, namespace)
    app = create_service_app(
        settings=settings, title="probe", routers=[router], runtime=ServiceRuntime()
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", cookies=signed_in_cookie(settings)
    ) as client:
        response = await client.get("/private")
    assert response.status_code == 200
