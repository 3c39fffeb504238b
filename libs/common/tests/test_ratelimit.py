"""The shared rate limiter, against a real Redis: counts per key, refuses with 429, fails open."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from pydantic import TypeAdapter, ValidationError

from ticketing_common.errors import TooManyRequests, install_error_handlers
from ticketing_common.ratelimit import (
    VOUCHED_CLIENT_HEADER,
    Limit,
    Rate,
    RateLimiter,
    client_address,
    vouch_for_client,
)

THREE_A_MINUTE = Limit("probe", "3/minute", "Slow down, please")


@pytest.fixture
async def limiter(redis_url: str, namespace: str) -> AsyncIterator[RateLimiter]:
    limiter = RateLimiter(redis_url, key_prefix=f"test:{namespace}")
    yield limiter
    await limiter.close()


async def test_a_key_is_let_through_up_to_its_rate_then_refused(limiter: RateLimiter) -> None:
    for _ in range(3):
        await limiter.hit(THREE_A_MINUTE, "alice")

    with pytest.raises(TooManyRequests) as refused:
        await limiter.hit(THREE_A_MINUTE, "alice")

    assert str(refused.value) == "Slow down, please"
    assert 1 <= refused.value.retry_after <= 60


async def test_keys_rules_and_prefixes_count_apart(
    limiter: RateLimiter, redis_url: str, namespace: str
) -> None:
    for _ in range(3):
        await limiter.hit(THREE_A_MINUTE, "alice")

    await limiter.hit(THREE_A_MINUTE, "bob")
    await limiter.hit(Limit("other", "3/minute", "x"), "alice")
    elsewhere = RateLimiter(redis_url, key_prefix=f"test:{namespace}:elsewhere")
    try:
        await elsewhere.hit(THREE_A_MINUTE, "alice")
    finally:
        await elsewhere.close()


async def test_a_refused_request_is_not_counted(limiter: RateLimiter) -> None:
    one = Limit("one", "1/minute", "x")
    await limiter.hit(one, "carol")
    for _ in range(5):
        with pytest.raises(TooManyRequests):
            await limiter.hit(one, "carol")

    await limiter.reset(one, "carol")

    await limiter.hit(one, "carol")  # the refusals left nothing behind


async def test_limits_hit_in_order_stop_at_the_first_one_over_and_count_none_after_it(
    limiter: RateLimiter,
) -> None:
    per_buyer = Limit("per-buyer", "1/minute", "buyer")
    per_address = Limit("per-address", "2/minute", "address")

    def order_of(buyer: str) -> tuple[tuple[Limit, tuple[str, ...]], ...]:
        return (per_buyer, (buyer,)), (per_address, ("203.0.113.7",))

    await limiter.hit_in_order(*order_of("dave"))
    for _ in range(3):
        with pytest.raises(TooManyRequests) as refused:
            await limiter.hit_in_order(*order_of("dave"))
        assert str(refused.value) == "buyer"

    # The buyer's refusals took nothing from the address: one more buyer behind it gets
    # through, and only then is it full.
    await limiter.hit_in_order(*order_of("erin"))
    with pytest.raises(TooManyRequests) as refused:
        await limiter.hit_in_order(*order_of("frank"))
    assert str(refused.value) == "address"
    assert 1 <= refused.value.retry_after <= 60


async def test_without_redis_the_limit_is_not_enforced(unused_tcp_port: int) -> None:
    limiter = RateLimiter(f"redis://127.0.0.1:{unused_tcp_port}/0", key_prefix="test")
    try:
        for _ in range(5):
            await limiter.hit(THREE_A_MINUTE, "dave")
        with pytest.raises(ConnectionError):
            await limiter.ping()
    finally:
        await limiter.close()


async def test_a_refusal_is_a_429_with_retry_after_in_the_shared_shape(
    limiter: RateLimiter,
) -> None:
    router = APIRouter()

    @router.post("/things")
    async def create(request: Request) -> dict[str, str]:
        await limiter.hit(Limit("things", "1/minute", "One thing a minute"), "k")
        return {}

    app = FastAPI()
    app.include_router(router)
    install_error_handlers(app)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        assert (await client.post("/things")).status_code == 200
        refused = await client.post("/things")

    assert refused.status_code == 429
    assert refused.json() == {"errors": [{"message": "One thing a minute"}]}
    assert 1 <= int(refused.headers["Retry-After"]) <= 60


def _request(peer: str, forwarded: str | None = None, vouched: str | None = None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    if vouched is not None:
        headers.append((VOUCHED_CLIENT_HEADER.lower().encode(), vouched.encode()))
    return Request({"type": "http", "headers": headers, "client": (peer, 1234)})


def test_the_client_is_the_peer_unless_the_proxy_is_trusted() -> None:
    request = _request("10.0.0.5", forwarded="203.0.113.9, 10.0.0.1")

    assert client_address(request, trust_proxy_headers=False) == "10.0.0.5"
    assert client_address(request, trust_proxy_headers=True) == "203.0.113.9"


def test_ipv6_clients_count_per_subscriber_block_and_junk_falls_back_to_the_peer() -> None:
    assert client_address(_request("2001:db8:1:2:3::9"), trust_proxy_headers=False) == (
        "2001:db8:1:2::/64"
    )
    assert client_address(_request("::ffff:192.0.2.7"), trust_proxy_headers=False) == "192.0.2.7"
    assert client_address(_request("10.0.0.5", "not-an-ip"), trust_proxy_headers=True) == (
        "10.0.0.5"
    )


def test_a_rate_setting_is_checked_when_the_settings_are_read() -> None:
    rate = TypeAdapter(Rate)

    assert rate.validate_python("5 per 10 minutes") == "5 per 10 minutes"
    with pytest.raises(ValidationError, match="is not a rate"):
        rate.validate_python("often")


def test_an_address_vouched_for_with_the_shared_key_is_the_client_and_a_forged_one_is_not() -> None:
    key = "k" * 40
    vouched = _request("10.0.0.5", vouched=vouch_for_client("203.0.113.9", key=key))
    forged = _request("10.0.0.5", vouched=vouch_for_client("203.0.113.9", key="x" * 40))
    bare = _request("10.0.0.5", vouched="203.0.113.9")

    assert client_address(vouched, trust_proxy_headers=False, vouching_key=key) == "203.0.113.9"
    assert client_address(vouched, trust_proxy_headers=False) == "10.0.0.5"  # not asked to
    assert client_address(forged, trust_proxy_headers=False, vouching_key=key) == "10.0.0.5"
    assert client_address(bare, trust_proxy_headers=False, vouching_key=key) == "10.0.0.5"
