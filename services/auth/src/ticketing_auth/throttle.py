"""Auth's throttles: every sign-up and sign-in in Redis, failed sign-ins in PostgreSQL.

**Attempts** (``AttemptLimits``, on the shared ``ticketing_common.ratelimit``):
every sign-up and every sign-in, successful or not, is counted per client address
and per email in Redis, shared by every replica, and refused with 429 and
``Retry-After`` once over its rate (settings ``SIGNUP_RATE_PER_*`` and
``SIGNIN_RATE_PER_*``). It is the first thing a request does, so a
refused request costs no password hash (about 300 ms and 64 MiB) and, for a
sign-up, tells nothing about whether the email has an account. The client is
counted first: a request its client may no longer make is not counted against
the email it names. Emails are counted by their SHA-256, so any address makes
a key of one length. These limits bound cost and enumeration; when Redis is
down they are not enforced (see the shared module).

**Failed sign-ins** (``SigninThrottle``) stay in PostgreSQL, as a separate rule.
It takes a success back, which a rate limit in Redis cannot (``limits`` has no
decrement), and its guarantee under concurrent guesses must not depend on Redis
being up: it is what stops password guessing, so it fails closed with the
database rather than open with the cache.

The failed sign-in rule (limits are settings; defaults in brackets):

* Failed sign-ins are counted per email [5] and per client address [50] in
  fixed windows [15 minutes] that start with the first failure.
* Once a count has reached its limit, every further sign-in for that email or
  from that client gets 429 with ``Retry-After`` (seconds until the window
  ends) — even with the right password, or guessing could go on and a 200
  among the 429s would give the password away. A refused attempt is not counted.
* Unknown emails are counted like known ones, so a 429 tells no more than a 401.
* A success takes back its own attempt and nothing else. It never resets a
  counter: neither the account owner signing in elsewhere nor an attacker
  signing in to an account of their own clears the failures counted so far.
* An attempt is counted *before* the password is checked and taken back when
  it succeeds, so a burst of concurrent guesses cannot get past the limit (nor
  can more than [5] simultaneous sign-ins of one email, right or wrong).
* The client is ``ticketing_common.ratelimit.client_address``: the peer, or the
  first ``X-Forwarded-For`` hop behind the gateway, IPv6 per /64.
  (uvicorn itself rewrites ``request.client`` from ``X-Forwarded-For`` when the
  peer is in its ``--forwarded-allow-ips``, 127.0.0.1 by default.)

The per-email limit lets anyone lock an account's sign-in for one window by
failing on purpose; that is the accepted price of stopping password guessing
spread over many addresses, and the window is short.

An attempt is counted in its own short transaction, committed before the
password is checked: it must stay counted when the failing request rolls back
(it raises the 401), and holding the counter rows' locks across a password hash
would serialise every sign-in of an address. A success takes its attempt back
in the request's transaction, so a request never holds two pooled connections
at once (which could exhaust the pool under load and deadlock on it).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing_auth import repository
from ticketing_auth.errors import TooManyFailedSignins
from ticketing_auth.repository import Counter
from ticketing_auth.settings import Settings
from ticketing_common.app import Worker, every
from ticketing_common.db import Database
from ticketing_common.ratelimit import Limit, RateLimiter

TOO_MANY_SIGNUPS = "Too many sign-ups, try again later"
TOO_MANY_SIGNINS = "Too many sign-in attempts, try again later"


def email_key(email: str) -> str:
    """How a rate limit names an email (already normalised by the schema)."""
    return hashlib.sha256(email.encode()).hexdigest()


class AttemptLimits:
    """Sign-ups and sign-ins per client and per email, counted in Redis."""

    def __init__(self, limiter: RateLimiter, settings: Settings) -> None:
        self.limiter = limiter
        self.signup_per_client = Limit(
            "signup-per-client", settings.SIGNUP_RATE_PER_CLIENT, TOO_MANY_SIGNUPS
        )
        self.signup_per_email = Limit(
            "signup-per-email", settings.SIGNUP_RATE_PER_EMAIL, TOO_MANY_SIGNUPS
        )
        self.signin_per_client = Limit(
            "signin-per-client", settings.SIGNIN_RATE_PER_CLIENT, TOO_MANY_SIGNINS
        )
        self.signin_per_email = Limit(
            "signin-per-email", settings.SIGNIN_RATE_PER_EMAIL, TOO_MANY_SIGNINS
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> AttemptLimits:
        return cls(RateLimiter.of_service(settings), settings)

    async def sign_up(self, *, client: str, email: str) -> None:
        """Count a sign-up; 429 when its client or its email is over its rate."""
        await self.limiter.hit_in_order(
            (self.signup_per_client, (client,)), (self.signup_per_email, (email_key(email),))
        )

    async def sign_in(self, *, client: str, email: str) -> None:
        """Count a sign-in attempt, whatever its outcome will be; 429 when over a rate."""
        await self.limiter.hit_in_order(
            (self.signin_per_client, (client,)), (self.signin_per_email, (email_key(email),))
        )

    async def close(self) -> None:
        await self.limiter.close()


@dataclass(frozen=True)
class Attempt:
    """A sign-in attempt counted against its keys; it stays counted unless it succeeds."""

    counters: tuple[Counter, ...]


class SigninThrottle:
    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.window = timedelta(seconds=settings.SIGNIN_WINDOW_SECONDS)
        self.max_per_email = settings.SIGNIN_MAX_FAILURES_PER_EMAIL
        self.max_per_client = settings.SIGNIN_MAX_FAILURES_PER_CLIENT
        self.prune_interval = settings.SIGNIN_THROTTLE_PRUNE_SECONDS

    async def begin(self, email: str, client: str) -> Attempt:
        """Count an attempt, or refuse it with 429 when a limit is already reached."""
        limits = {f"email:{email}": self.max_per_email, f"client:{client}": self.max_per_client}
        async with self.database.transaction() as session:
            counters = await repository.add_attempt(session, list(limits), self.window)
            over = [counter for counter in counters if counter.failures > limits[counter.key]]
            if over:
                # Raising rolls this transaction back: a refused attempt is not counted.
                raise TooManyFailedSignins(retry_after=max(self._seconds_left(c) for c in over))
        return Attempt(tuple(counters))

    async def succeeded(self, session: AsyncSession, attempt: Attempt) -> None:
        """Take back this attempt's own count, in the caller's transaction.

        Other clients' failures stay counted.
        """
        await repository.remove_attempt(session, attempt.counters)

    def _seconds_left(self, counter: Counter) -> int:
        left = counter.window_started_at + self.window - counter.now
        return max(1, math.ceil(left.total_seconds()))

    async def prune(self) -> int:
        async with self.database.transaction() as session:
            return await repository.delete_expired_counters(session, self.window)

    def pruner(self) -> Worker:
        """Background worker: delete expired counters so unknown emails do not pile up.

        Every replica may run it; deleting an expired row twice is harmless, and
        a row reset by a concurrent attempt is no longer expired when re-checked.
        """
        return every(self.prune_interval, self.prune)
