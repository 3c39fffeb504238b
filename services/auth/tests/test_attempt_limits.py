"""Sign-ups and sign-ins, successful or not, are limited per client and per email in Redis
(the rule is in throttle.py): 429 with Retry-After in the shared shape, before any
password is hashed, each key counted apart, one count for every replica."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx
from sqlalchemy import func, select

from ticketing_auth.models import SigninCounter, User
from ticketing_common.db import Database
from ticketing_common.embedded import free_port

ServeAuth = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]
PASSWORD = "correct horse battery"
TOO_MANY_SIGNUPS = {"errors": [{"message": "Too many sign-ups, try again later"}]}
TOO_MANY_SIGNINS = {"errors": [{"message": "Too many sign-in attempts, try again later"}]}
HOUR = 3600


def _from(client_address: str | None) -> dict[str, str]:
    return {"X-Forwarded-For": client_address} if client_address else {}


async def _sign_up(
    client: httpx.AsyncClient, email: str, *, via: str | None = None
) -> httpx.Response:
    response = await client.post(
        "/api/users/signup", json={"email": email, "password": PASSWORD}, headers=_from(via)
    )
    client.cookies.clear()
    return response


async def _sign_in(
    client: httpx.AsyncClient, email: str, password: str = PASSWORD, *, via: str | None = None
) -> httpx.Response:
    response = await client.post(
        "/api/users/signin", json={"email": email, "password": password}, headers=_from(via)
    )
    client.cookies.clear()
    return response


def _refused(response: httpx.Response, body: object, window: int) -> bool:
    return (
        response.status_code == 429
        and response.json() == body
        and 1 <= int(response.headers["Retry-After"]) <= window
        and "session" not in response.cookies
    )


async def _users(db: Database) -> int:
    async with db.transaction() as session:
        return await session.scalar(select(func.count()).select_from(User)) or 0


async def _failures_counted(db: Database) -> int:
    """Failed sign-ins the PostgreSQL throttle holds, over every key."""
    async with db.transaction() as session:
        return await session.scalar(select(func.coalesce(func.sum(SigninCounter.failures), 0))) or 0


# -- sign-up --------------------------------------------------------------------------


async def test_signups_from_one_client_over_its_rate_get_429_and_create_nobody(
    serve_auth: ServeAuth, db: Database
) -> None:
    async with serve_auth(SIGNUP_RATE_PER_CLIENT="2/hour") as client:
        allowed = [(await _sign_up(client, f"user{n}@example.com")).status_code for n in range(2)]
        refused = await _sign_up(client, "user2@example.com")

    assert allowed == [201, 201]
    assert _refused(refused, TOO_MANY_SIGNUPS, HOUR)
    assert await _users(db) == 2  # refused before the hash and the insert


async def test_another_client_may_still_sign_up(serve_auth: ServeAuth) -> None:
    async with serve_auth(SIGNUP_RATE_PER_CLIENT="1/hour", TRUST_PROXY_HEADERS=True) as client:
        first = await _sign_up(client, "ann@example.com", via="203.0.113.1")
        again = await _sign_up(client, "bob@example.com", via="203.0.113.1")
        other = await _sign_up(client, "bob@example.com", via="203.0.113.2")

    assert [first.status_code, again.status_code, other.status_code] == [201, 429, 201]


async def test_signups_naming_one_email_are_limited_so_email_in_use_cannot_be_probed_at_will(
    serve_auth: ServeAuth,
) -> None:
    async with serve_auth(SIGNUP_RATE_PER_EMAIL="3/hour", TRUST_PROXY_HEADERS=True) as client:
        # From three addresses: the per-email rate holds whoever asks.
        answers = [
            await _sign_up(client, "ann@example.com", via=f"203.0.113.{n}") for n in range(4)
        ]
        other_email = await _sign_up(client, "bob@example.com", via="203.0.113.9")

    assert [answer.status_code for answer in answers[:3]] == [201, 409, 409]
    assert _refused(answers[3], TOO_MANY_SIGNUPS, HOUR)
    assert other_email.status_code == 201


async def test_signups_over_the_client_rate_do_not_count_against_the_email(
    serve_auth: ServeAuth,
) -> None:
    """The client is counted first: a refused client cannot use up someone's email."""
    async with serve_auth(
        SIGNUP_RATE_PER_CLIENT="1/hour", SIGNUP_RATE_PER_EMAIL="1/hour", TRUST_PROXY_HEADERS=True
    ) as client:
        await _sign_up(client, "mallory@example.com", via="198.51.100.7")
        blocked = [
            (await _sign_up(client, "ann@example.com", via="198.51.100.7")).status_code
            for _ in range(3)
        ]
        owner = await _sign_up(client, "ann@example.com", via="203.0.113.5")

    assert blocked == [429, 429, 429]
    assert owner.status_code == 201


# -- sign-in --------------------------------------------------------------------------


async def test_successful_signins_of_one_email_are_limited_too(serve_auth: ServeAuth) -> None:
    async with serve_auth(SIGNIN_RATE_PER_EMAIL="3/hour") as client:
        await _sign_up(client, "ann@example.com")
        await _sign_up(client, "bob@example.com")
        allowed = [(await _sign_in(client, "ann@example.com")).status_code for _ in range(3)]
        refused = await _sign_in(client, "ann@example.com")
        other_email = await _sign_in(client, "bob@example.com")

    assert allowed == [200, 200, 200]
    assert _refused(refused, TOO_MANY_SIGNINS, HOUR)
    assert other_email.status_code == 200


async def test_signins_from_one_client_over_its_rate_get_429_whatever_the_email(
    serve_auth: ServeAuth,
) -> None:
    async with serve_auth(SIGNIN_RATE_PER_CLIENT="3/hour", TRUST_PROXY_HEADERS=True) as client:
        await _sign_up(client, "ann@example.com")
        attempts = [
            await _sign_in(client, email, via="198.51.100.7")
            for email in ("ann@example.com", "x@example.com", "y@example.com", "ann@example.com")
        ]
        other_client = await _sign_in(client, "ann@example.com", via="203.0.113.5")

    assert [attempt.status_code for attempt in attempts[:3]] == [200, 401, 401]
    assert _refused(attempts[3], TOO_MANY_SIGNINS, HOUR)
    assert other_client.status_code == 200


async def test_a_refused_signin_is_answered_before_its_password_is_checked(
    serve_auth: ServeAuth, db: Database
) -> None:
    """Over the rate, even a wrong password is a 429, and no failure is counted for it:
    the request ended before the hash and before the failed sign-in throttle."""
    async with serve_auth(SIGNIN_RATE_PER_EMAIL="1/hour") as client:
        await _sign_up(client, "ann@example.com")
        assert (await _sign_in(client, "ann@example.com")).status_code == 200
        refused = await _sign_in(client, "ann@example.com", "wrong password")

    assert refused.status_code == 429
    assert await _failures_counted(db) == 0


async def test_concurrent_signins_of_one_email_never_exceed_the_rate(
    serve_auth: ServeAuth,
) -> None:
    async with serve_auth(SIGNIN_RATE_PER_EMAIL="3/hour") as client:
        await _sign_up(client, "ann@example.com")
        responses = await asyncio.gather(*(_sign_in(client, "ann@example.com") for _ in range(12)))

    statuses = sorted(response.status_code for response in responses)
    assert statuses == [200] * 3 + [429] * 9


# -- shared by replicas, and a Redis outage ------------------------------------------


async def test_two_replicas_count_one_limit_together(serve_auth: ServeAuth) -> None:
    settings = {"SIGNUP_RATE_PER_CLIENT": "3/hour", "SIGNIN_RATE_PER_EMAIL": "2/hour"}
    async with serve_auth(**settings) as first, serve_auth(**settings) as second:
        signups = [
            (await _sign_up(replica, f"user{n}@example.com")).status_code
            for n, replica in enumerate((first, second, first, second))
        ]
        signins = [
            (await _sign_in(replica, "user0@example.com")).status_code
            for replica in (second, first, second)
        ]

    assert signups == [201, 201, 201, 429]
    assert signins == [200, 200, 429]


async def test_without_redis_sign_up_and_sign_in_still_work(serve_auth: ServeAuth) -> None:
    """A throttle outage is not an outage: the limits are skipped (and it is logged)."""
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    async with serve_auth(REDIS_URL=unreachable, SIGNUP_RATE_PER_CLIENT="1/hour") as client:
        signups = [(await _sign_up(client, f"user{n}@example.com")).status_code for n in range(2)]
        signin = await _sign_in(client, "user0@example.com")
        ready = await client.get("/readyz")

    assert signups == [201, 201]
    assert signin.status_code == 200
    assert ready.status_code == 200
