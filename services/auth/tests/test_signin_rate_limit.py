"""Repeated failed sign-ins are rate limited with 429 (SPEC §3; the rule is in throttle.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from datetime import timedelta

import httpx
from sqlalchemy import func, select

from ticketing_auth.app import create_app
from ticketing_auth.models import SigninCounter
from ticketing_auth.settings import Settings
from ticketing_auth.throttle import SigninThrottle
from ticketing_common.db import Database
from ticketing_common.testing import wait_until

ServeAuth = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
PASSWORD = "correct horse battery"
WRONG_PASSWORD = "wrong password"
TOO_MANY = {"errors": [{"message": "Too many failed sign-ins, try again later"}]}


async def _sign_up(client: httpx.AsyncClient, email: str = "ann@example.com") -> None:
    response = await client.post("/api/users/signup", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201
    client.cookies.clear()


async def _sign_in(
    client: httpx.AsyncClient,
    email: str = "ann@example.com",
    password: str = WRONG_PASSWORD,
    forwarded_for: str | None = None,
) -> httpx.Response:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return await client.post(
        "/api/users/signin", json={"email": email, "password": password}, headers=headers
    )


async def test_signin_after_max_failures_per_email_gets_429_with_retry_after(
    serve_auth: ServeAuth,
) -> None:
    async with serve_auth(SIGNIN_MAX_FAILURES_PER_EMAIL=3, SIGNIN_WINDOW_SECONDS=600) as client:
        await _sign_up(client)
        failures = [await _sign_in(client) for _ in range(3)]
        refused = await _sign_in(client)

    assert [response.status_code for response in failures] == [401, 401, 401]
    assert refused.status_code == 429
    assert refused.json() == TOO_MANY
    assert 0 < int(refused.headers["Retry-After"]) <= 600


async def test_blocked_email_gets_429_even_with_the_right_password(serve_auth: ServeAuth) -> None:
    async with serve_auth(SIGNIN_MAX_FAILURES_PER_EMAIL=2) as client:
        await _sign_up(client)
        for _ in range(2):
            await _sign_in(client)
        response = await _sign_in(client, password=PASSWORD)

    assert response.status_code == 429
    assert "session" not in response.cookies


async def test_unknown_email_is_rate_limited_like_a_known_one(serve_auth: ServeAuth) -> None:
    async with serve_auth(SIGNIN_MAX_FAILURES_PER_EMAIL=2) as client:
        statuses = [(await _sign_in(client, "nobody@example.com")).status_code for _ in range(3)]

    assert statuses == [401, 401, 429]


async def test_failures_for_one_email_do_not_block_another_email(serve_auth: ServeAuth) -> None:
    async with serve_auth(SIGNIN_MAX_FAILURES_PER_EMAIL=2) as client:
        await _sign_up(client, "bob@example.com")
        for _ in range(3):
            await _sign_in(client, "ann@example.com")
        response = await _sign_in(client, "bob@example.com", PASSWORD)

    assert response.status_code == 200


async def test_failures_across_emails_from_one_client_hit_the_client_limit(
    serve_auth: ServeAuth,
) -> None:
    async with serve_auth(SIGNIN_MAX_FAILURES_PER_CLIENT=3) as client:
        statuses = [(await _sign_in(client, f"user{n}@example.com")).status_code for n in range(4)]

    assert statuses == [401, 401, 401, 429]


async def test_client_limit_counts_the_forwarded_client_when_proxy_headers_are_trusted(
    serve_auth: ServeAuth,
) -> None:
    async with serve_auth(SIGNIN_MAX_FAILURES_PER_CLIENT=2, TRUST_PROXY_HEADERS=True) as client:
        await _sign_up(client)
        attacker = [
            (await _sign_in(client, f"u{n}@example.com", forwarded_for="203.0.113.9")).status_code
            for n in range(3)
        ]
        # The gateway's own address is the TCP peer of both; only the header differs.
        other = await _sign_in(client, password=PASSWORD, forwarded_for="198.51.100.7, 10.0.0.1")

    assert attacker == [401, 401, 429]
    assert other.status_code == 200


async def test_forwarded_for_is_ignored_unless_proxy_headers_are_trusted(
    make_settings: Callable[..., Settings],
) -> None:
    # In-process ASGI: uvicorn would itself apply X-Forwarded-For from a 127.0.0.1
    # peer (its --forwarded-allow-ips default), hiding what the service decides.
    app = create_app(make_settings(SIGNIN_MAX_FAILURES_PER_CLIENT=2))
    transport = httpx.ASGITransport(app=app, client=("192.0.2.1", 40000))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://auth") as client,
    ):
        statuses = [
            (
                await _sign_in(client, f"u{n}@example.com", forwarded_for=f"203.0.113.{n}")
            ).status_code
            for n in range(3)
        ]

    assert statuses == [401, 401, 429]


async def test_ipv6_clients_are_counted_per_64_block(serve_auth: ServeAuth) -> None:
    async with serve_auth(SIGNIN_MAX_FAILURES_PER_CLIENT=2, TRUST_PROXY_HEADERS=True) as client:
        statuses = [
            (
                await _sign_in(client, f"u{n}@example.com", forwarded_for=f"2001:db8:1:2::{n + 1}")
            ).status_code
            for n in range(3)
        ]

    assert statuses == [401, 401, 429]


async def test_a_success_does_not_reset_another_clients_failures(serve_auth: ServeAuth) -> None:
    async with serve_auth(SIGNIN_MAX_FAILURES_PER_EMAIL=3, TRUST_PROXY_HEADERS=True) as client:
        await _sign_up(client)
        attacker = "203.0.113.9"
        first = [(await _sign_in(client, forwarded_for=attacker)).status_code for _ in range(2)]
        owner = await _sign_in(client, password=PASSWORD, forwarded_for="198.51.100.7")
        client.cookies.clear()
        then = [(await _sign_in(client, forwarded_for=attacker)).status_code for _ in range(2)]

    assert first == [401, 401]
    assert owner.status_code == 200
    assert then == [401, 429]  # the owner's success left the attacker's 2 failures counted


async def test_a_success_does_not_reset_the_clients_own_counter(serve_auth: ServeAuth) -> None:
    # Otherwise signing in to an account of one's own would buy more guesses.
    async with serve_auth(SIGNIN_MAX_FAILURES_PER_CLIENT=3) as client:
        await _sign_up(client, "mallory@example.com")
        statuses = []
        for n in range(3):
            statuses.append((await _sign_in(client, f"victim{n}@example.com")).status_code)
            own = await _sign_in(client, "mallory@example.com", PASSWORD)
            statuses.append(own.status_code)
            client.cookies.clear()
        statuses.append((await _sign_in(client, "victim9@example.com")).status_code)

    assert statuses == [401, 200, 401, 200, 401, 429, 429]


async def test_concurrent_failed_signins_cannot_get_past_the_limit(serve_auth: ServeAuth) -> None:
    async with serve_auth(SIGNIN_MAX_FAILURES_PER_EMAIL=3) as client:
        await _sign_up(client)
        responses = await asyncio.gather(*(_sign_in(client) for _ in range(10)))

    assert sorted(response.status_code for response in responses) == [401] * 3 + [429] * 7


async def test_signins_are_allowed_again_when_the_window_is_over(serve_auth: ServeAuth) -> None:
    # A window of a few seconds: each sign-in hashes a password (hundreds of ms on a busy
    # machine), and the refusal must still fall inside the window of the failure.
    window = 4
    async with serve_auth(SIGNIN_MAX_FAILURES_PER_EMAIL=1, SIGNIN_WINDOW_SECONDS=window) as client:
        await _sign_up(client)
        failed = await _sign_in(client)
        refused = await _sign_in(client, password=PASSWORD)
        retry_after = int(refused.headers.get("Retry-After", "0"))
        await asyncio.sleep(retry_after + 0.2)
        allowed = await _sign_in(client, password=PASSWORD)

    assert (failed.status_code, refused.status_code, allowed.status_code) == (401, 429, 200)
    assert 1 <= retry_after <= window


async def test_counters_are_shared_by_every_replica(serve_auth: ServeAuth) -> None:
    async with (
        serve_auth(SIGNIN_MAX_FAILURES_PER_EMAIL=2) as replica_a,
        serve_auth(SIGNIN_MAX_FAILURES_PER_EMAIL=2) as replica_b,
    ):
        statuses = [
            (await _sign_in(replica_a)).status_code,
            (await _sign_in(replica_b)).status_code,
            (await _sign_in(replica_a)).status_code,
        ]

    assert statuses == [401, 401, 429]


async def test_expired_counters_are_pruned(
    make_settings: Callable[..., Settings], db: Database
) -> None:
    settings = make_settings(SIGNIN_WINDOW_SECONDS=1)
    throttle = SigninThrottle(db, settings)
    await throttle.begin("old@example.com", "203.0.113.9")
    await asyncio.sleep(1.1)
    await throttle.begin("new@example.com", "198.51.100.7")

    assert await throttle.prune() == 2
    async with db.transaction() as session:
        keys = set(await session.scalars(select(SigninCounter.key)))
        assert keys == {"email:new@example.com", "client:198.51.100.7"}
        assert await session.scalar(select(func.count()).select_from(SigninCounter)) == 2


async def test_the_running_service_prunes_counters_whose_window_ended(
    serve_auth: ServeAuth, db: Database
) -> None:
    async with db.transaction() as session:
        session.add(
            SigninCounter(
                key="email:old@example.com",
                failures=3,
                window_started_at=func.now() - timedelta(days=1),
            )
        )

    async def keys() -> set[str]:
        async with db.transaction() as session:
            return set(await session.scalars(select(SigninCounter.key)))

    async with serve_auth(SIGNIN_THROTTLE_PRUNE_SECONDS=0.1) as client:
        # Counted by the throttle that serves sign-ins, in a window that is still open.
        assert (await _sign_in(client, email="new@example.com")).status_code == 401

        async def pruned() -> bool:
            return "email:old@example.com" not in await keys()

        await wait_until(pruned)

    assert await keys() == {"email:new@example.com", "client:127.0.0.1"}
