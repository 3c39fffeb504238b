"""Session revocation benchmark: published ``session:revoked`` -> refused by served apps.

Run with ``uv run python bench/revocation.py [--revocations N] [--replicas R]``. The
script starts its own embedded nats-server (127.0.0.1, in a temporary directory) and
stops it by the PID it started when it finishes or fails.

Each replica is an app built by ``create_service_app`` with a revocation follower,
as every service is, served over real HTTP by uvicorn in this process, with one
route behind ``RequiredUser``. For each revocation the script signs a fresh session
in, checks every replica accepts it, then takes ``time.perf_counter()``, publishes
``session:revoked`` on JetStream (ack included) and polls every replica until all
answer 401; the latency is the time until the last replica refused.

Then the start-up replay: ``--backlog`` more revocations are published, and a new
replica is started; the figure is the time from creating the app until it listens
(it listens only once it has replayed), checked by its first answer to a revoked
session being 401.

The baseline is what a revocation that never arrives leaves: the token lives on,
at most ``SESSION_TOKEN_TTL_SECONDS``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import secrets
import tempfile
import time
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import uuid4

import httpx
from fastapi import APIRouter, FastAPI

from ticketing_common.app import ServiceRuntime, create_service_app
from ticketing_common.embedded import EmbeddedStack
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import Envelope, SessionRevoked
from ticketing_common.revocations import RevocationFollower
from ticketing_common.session import RequiredUser
from ticketing_common.settings import BusSettings
from ticketing_common.testing import ServedApp, serve_app, signed_in_cookie

REFUSAL_TIMEOUT_SECONDS = 30.0
# Publishes in flight at once while filling the backlog: all 10,000 at once time out.
PUBLISH_CHUNK = 200

router = APIRouter()


@router.get("/private")
async def private(user: RequiredUser) -> dict[str, str]:
    return {"email": user.email}


def make_app(settings: BusSettings) -> FastAPI:
    bus = EventBus.from_settings(settings)
    runtime = ServiceRuntime(bus=bus, revocations=RevocationFollower(bus, settings))
    return create_service_app(
        settings=settings, title="bench", routers=[router], runtime=runtime, configure_logs=False
    )


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


async def revoke(bus: EventBus, session_id: object) -> None:
    expires_at = datetime.now(UTC) + timedelta(minutes=15)
    event = SessionRevoked(id=session_id, user_id=uuid4(), expires_at=expires_at)
    await bus.publish(Envelope.of(event))


async def refused_by_all(clients: list[httpx.AsyncClient]) -> None:
    deadline = time.perf_counter() + REFUSAL_TIMEOUT_SECONDS
    while clients:
        if time.perf_counter() > deadline:
            raise TimeoutError("a replica kept accepting a revoked session")
        answers = await asyncio.gather(*(client.get("/private") for client in clients))
        clients = [c for c, a in zip(clients, answers, strict=True) if a.status_code != 401]


async def measure(bus: EventBus, settings: BusSettings, replicas: list[ServedApp]) -> float:
    """Milliseconds from publishing one revocation until every replica refuses it."""
    session_id = uuid4()
    cookies = signed_in_cookie(settings, session_id=session_id)
    async with AsyncExitStack() as stack:
        # Clients made (and connections opened) before the clock starts.
        clients = [await stack.enter_async_context(r.client(cookies=cookies)) for r in replicas]
        for client in clients:
            response = await client.get("/private")
            assert response.status_code == 200, response.text
        started = time.perf_counter()
        await revoke(bus, session_id)
        await refused_by_all(clients)
        return (time.perf_counter() - started) * 1000


async def run(nats_url: str, revocations: int, replicas: int, backlog: int) -> None:
    settings = BusSettings(
        ENVIRONMENT="test",
        JWT_KEY=secrets.token_urlsafe(32),
        NATS_URL=nats_url,
        NATS_NAMESPACE=f"bench{uuid4().hex[:8]}",
    )
    bus = await EventBus(nats_url, settings.NATS_NAMESPACE, client_name="bench").connect()
    try:
        async with AsyncExitStack() as stack:
            served = [
                await stack.enter_async_context(serve_app(make_app(settings)))
                for _ in range(replicas)
            ]
            latencies = [await measure(bus, settings, served) for _ in range(revocations)]

        print(f"\npublish -> refused by all {replicas} replicas, {revocations} revocations")
        print("| p50 ms | p95 ms | p99 ms | max ms |")
        print("|---:|---:|---:|---:|")
        print(
            f"| {percentile(latencies, 0.5):.2f} | {percentile(latencies, 0.95):.2f} "
            f"| {percentile(latencies, 0.99):.2f} | {max(latencies):.2f} |"
        )
        ttl_ms = settings.SESSION_TOKEN_TTL_SECONDS * 1000
        print(
            f"baseline (a lost revocation: the token's life, {settings.SESSION_TOKEN_TTL_SECONDS}"
            f" s) / p99: x{ttl_ms / percentile(latencies, 0.99):,.0f}"
        )

        published = time.perf_counter()
        for start in range(0, backlog, PUBLISH_CHUNK):
            chunk = min(PUBLISH_CHUNK, backlog - start)
            await asyncio.gather(*(revoke(bus, uuid4()) for _ in range(chunk)))
        last = uuid4()
        await revoke(bus, last)
        publish_s = time.perf_counter() - published
        started = time.perf_counter()
        async with serve_app(make_app(settings)) as fresh:
            listening_s = time.perf_counter() - started
            async with fresh.client(cookies=signed_in_cookie(settings, session_id=last)) as client:
                first = await client.get("/private")
        assert first.status_code == 401, "a fresh replica served a revoked session"
        print(
            f"\nstart-up replay of {backlog + revocations + 1} revocations: listening after "
            f"{listening_s:.2f} s (publishing the backlog took {publish_s:.2f} s); "
            f"first answer to a revoked session: {first.status_code}"
        )
    finally:
        await bus.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--revocations", type=int, default=200, help="measured (default 200)")
    parser.add_argument("--replicas", type=int, default=2, help="served apps (default 2)")
    parser.add_argument(
        "--backlog", type=int, default=10_000, help="replayed at start-up (default 10000)"
    )
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="abort the whole run after this many seconds"
    )
    args = parser.parse_args()
    if args.revocations < 1 or args.replicas < 1 or args.backlog < 0:
        parser.error("--revocations and --replicas must be at least 1, --backlog at least 0")
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="revocation-bench-", ignore_cleanup_errors=True) as tmp:
        stack = EmbeddedStack(Path(tmp))
        try:
            stack.start(nats=True, postgres=False, redis=False)
            assert stack.nats is not None
            print(f"nats pid={stack.nats.pid}")
            run_all = run(stack.nats.url, args.revocations, args.replicas, args.backlog)
            asyncio.run(asyncio.wait_for(run_all, args.timeout))
        finally:
            stack.stop()


if __name__ == "__main__":
    main()
