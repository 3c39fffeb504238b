"""Rate limits shared by every replica of a service, counted in Redis.

Built on the ``limits`` library (its sliding-window counter: a burst at the
edge of two windows cannot double the rate, and each key costs two Redis
counters). A ``Limit`` names what is limited, how fast (``limits``'s notation:
``"10/minute"``, ``"100 per hour"``) and what the client is told; ``hit``
counts one request against one key and raises ``TooManyRequests`` (429 with
``Retry-After``) once the key is over its rate. A refused request is not
counted, so a client that waits for ``Retry-After`` is let through.

When Redis cannot be reached the limits are not enforced (the request goes on
and a warning is logged): a throttle outage must not become a marketplace
outage. What must hold without Redis — the cap on one buyer's open orders,
the failed sign-in throttle — is enforced in PostgreSQL by its service.

``client_address`` is how every limit keyed "per client" names the client.
A service of ours that calls an API on a visitor's behalf (the web client's
pages) names the visitor with ``vouch_for_client``: a header signed with the
shared key, which the gateway passes through untouched (it rewrites
``X-Forwarded-For`` with the caller's own address, the web server's).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import ipaddress
import logging
import math
import time
from dataclasses import dataclass
from typing import Annotated, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from fastapi import Request
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.storage.redis.bridge import RedisBridge
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from pydantic import AfterValidator
from redis.asyncio import ConnectionPool, Redis

from ticketing_common.errors import TooManyRequests

logger = logging.getLogger("ticketing.ratelimit")

IPV6_SUBSCRIBER_PREFIX = 64


VOUCHED_CLIENT_HEADER = "X-Ticketing-Client"


def _client_signature(address: str, key: str) -> str:
    # A key of its own, derived from the shared one: a signed address is never a session.
    derived = hmac.new(key.encode(), b"ticketing client address", hashlib.sha256).digest()
    return hmac.new(derived, address.encode(), hashlib.sha256).hexdigest()


def vouch_for_client(address: str, *, key: str) -> str:
    """The ``VOUCHED_CLIENT_HEADER`` value naming ``address`` (what ``client_address``
    found for the visitor), signed with ``key``."""
    return f"{address} {_client_signature(address, key)}"


def _vouched(value: str, key: str) -> str | None:
    """The address in a signed header (as ``client_address`` named it), or None."""
    address, _, signature = value.partition(" ")
    if not address or not hmac.compare_digest(signature, _client_signature(address, key)):
        return None
    return address


def client_address(
    request: Request, *, trust_proxy_headers: bool, vouching_key: str | None = None
) -> str:
    """Who is asking, as every per-client limit counts it.

    The address a service of ours vouched for (``vouch_for_client``, checked
    with ``vouching_key``); else ``request.client.host``, or the first
    ``X-Forwarded-For`` hop when ``trust_proxy_headers`` is set (behind the
    gateway, which overwrites that header with the real client). IPv6 clients
    are counted per /64, the block one subscriber gets, so rotating addresses
    inside it gains nothing.
    """
    if vouching_key is not None:
        vouched = _vouched(request.headers.get(VOUCHED_CLIENT_HEADER, ""), vouching_key)
        if vouched is not None:
            return vouched
    if trust_proxy_headers:
        forwarded = request.headers.get("x-forwarded-for", "").split(",")[0].strip()
        with contextlib.suppress(ValueError):
            return _network_of(forwarded)
    peer = request.client.host if request.client else ""
    try:
        return _network_of(peer)
    except ValueError:
        return peer or "unknown"


def _network_of(address: str) -> str:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((ip, IPV6_SUBSCRIBER_PREFIX), strict=False))
    return str(ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else ip)


def _valid_rate(value: str) -> str:
    try:
        parse(value)
    except ValueError as error:
        raise ValueError(
            f"{value!r} is not a rate: write it like '10/minute' or '5 per 10 minutes'"
        ) from error
    return value


Rate = Annotated[str, AfterValidator(_valid_rate)]
"""A setting holding a ``Limit``'s rate, checked at start-up rather than at the first request."""


@dataclass(frozen=True)
class Limit:
    """One rule: at most ``rate`` requests per key (e.g. ``"10/minute"``)."""

    name: str
    """Part of the Redis key, so two rules never share a counter (``orders-per-user``)."""
    rate: str
    message: str
    """What the refused client reads, in the shared error shape."""

    @functools.cached_property
    def item(self) -> RateLimitItem:
        return parse(self.rate)


def _storage_uri(redis_url: str) -> str:
    """``limits`` names its asyncio Redis backends ``async+redis://`` (or ``+unix``)."""
    parts = urlsplit(redis_url)
    scheme = {"redis": "async+redis", "rediss": "async+rediss", "unix": "async+redis+unix"}
    return urlunsplit(parts._replace(scheme=scheme.get(parts.scheme, parts.scheme)))


# limits' own sliding-window script as a function, applied to each limit in turn: one
# round trip counts a request against several limits, and, as separate hits would, stops
# at the first one that is over (that one and the ones after it are not counted). Its
# result: 0, or the position (from 1) of the limit that refused.
_ACQUIRE_IN_ORDER = f"""
local function acquire(KEYS, ARGV)
{RedisBridge.SCRIPT_ACQUIRE_SLIDING_WINDOW.decode()}
end
for i = 1, #KEYS / 2 do
    local keys = {{KEYS[2 * i - 1], KEYS[2 * i]}}
    if not acquire(keys, {{ARGV[3 * i - 2], ARGV[3 * i - 1], ARGV[3 * i]}}) then
        return i
    end
end
return 0
"""


class LimitedServiceSettings(Protocol):
    """What ``RateLimiter.of_service`` reads: a service on the bus, with Redis."""

    @property
    def SERVICE_NAME(self) -> str: ...
    @property
    def NATS_NAMESPACE(self) -> str: ...
    @property
    def REDIS_URL(self) -> str: ...


class RateLimiter:
    """The limits of one service, counted in the Redis at ``redis_url``.

    ``key_prefix`` separates namespaces that share one Redis (tests, tenants).
    """

    @classmethod
    def of_service(cls, settings: LimitedServiceSettings) -> RateLimiter:
        """A service's limiter: its counters named by its namespace and its name, so
        two namespaces (deployments, tests) sharing one Redis never count together."""
        prefix = f"ticketing:{settings.NATS_NAMESPACE}:{settings.SERVICE_NAME}"
        return cls(settings.REDIS_URL, key_prefix=prefix)

    def __init__(self, redis_url: str, *, key_prefix: str) -> None:
        # Our own pool, so the limiter's connections close with the app; short timeouts,
        # so a Redis outage delays a request by at most a second before it goes on.
        self._pool: ConnectionPool[Any] = ConnectionPool.from_url(
            redis_url, socket_timeout=1, socket_connect_timeout=1
        )
        self._storage = RedisStorage(
            _storage_uri(redis_url),
            implementation="redispy",
            key_prefix=key_prefix,
            wrap_exceptions=True,
            # A documented option that limits' annotation of ``**options`` leaves out.
            connection_pool=self._pool,  # type: ignore[arg-type]
        )
        self._limiter = SlidingWindowCounterRateLimiter(self._storage)
        self._acquire_in_order = Redis(connection_pool=self._pool).register_script(
            _ACQUIRE_IN_ORDER
        )

    async def hit(self, limit: Limit, *key: str) -> None:
        """Count one request of ``key`` against ``limit``; 429 once it is over."""
        await self.hit_in_order((limit, key))

    async def hit_in_order(self, *hits: tuple[Limit, tuple[str, ...]]) -> None:
        """Count one request against each ``(limit, key)`` in turn, in one round trip; 429
        from the first limit that is over, and the ones after it are not counted."""
        keys: list[str] = []
        args: list[int] = []
        for limit, key in hits:
            keys.extend(self._window_keys(limit, key))
            args.extend((limit.item.amount, limit.item.get_expiry(), 1))
        try:
            refused = int(await self._acquire_in_order(keys=keys, args=args))
            if not refused:
                return
            limit, key = hits[refused - 1]
            stats = await self._limiter.get_window_stats(limit.item, limit.name, *key)
        except Exception:
            names = ", ".join(limit.name for limit, _ in hits)
            logger.warning("rate limit not enforced: Redis unreachable", extra={"limit": names})
            return
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        raise TooManyRequests(limit.message, retry_after=retry_after)

    def _window_keys(self, limit: Limit, key: tuple[str, ...]) -> tuple[str, str]:
        """The previous and current windows' Redis keys of ``key`` under ``limit``, named
        as limits names them, so its window statistics and ``reset`` read the same."""
        counted = limit.item.key_for(limit.name, *key)
        return (
            self._storage.bridge.prefixed_key(self._storage._previous_window_key(counted)),
            self._storage.bridge.prefixed_key(self._storage._current_window_key(counted)),
        )

    async def reset(self, limit: Limit, *key: str) -> None:
        """Forget ``key``'s count under ``limit`` (an operator's or a test's tool)."""
        await self._limiter.clear(limit.item, limit.name, *key)

    async def ping(self) -> None:
        if not await self._storage.check():
            raise ConnectionError("redis unreachable")

    async def close(self) -> None:
        await self._pool.disconnect()
