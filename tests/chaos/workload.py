"""The chaos workload: many buyers racing for a few tickets through the gateway.

Each buyer (its own cookie jar) reserves a ticket, then pays, is declined and then
pays, cancels, or lets the order expire. A prober asks every component whether it
answers, a few times a second, so a fault always has requests to measure. Every
request and its answer goes into a :class:`History`, also written as JSONL.
Bounded in count and time; talks to 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import httpx

from tests.chaos import components
from tests.e2e.conftest import PASSWORD
from ticketing_common.embedded import HOST
from ticketing_devstack.stack import STRIPE_SANDBOX_NAME

REQUEST_TIMEOUT = 10.0
PROBE_TIMEOUT = 2.0
PROBE_INTERVAL = 0.5
# How long a buyer keeps retrying one step through an outage before giving up on it.
STEP_PATIENCE = 90.0
BODY_LIMIT = 2000
PROBE = "probe"
DIRECT = "PROBE"
"""The method recorded for a probe that bypasses the gateway (servers, expiration)."""
GATEWAY_PROBES = 5
"""Probes per round through the gateway: one route of each HTTP service."""
VISA = "tok_visa"
DECLINED = "tok_chargeDeclined"


@dataclass(frozen=True)
class Exchange:
    """One request and its answer; ``status`` 0 when no answer came."""

    t: float  # when the request was sent, seconds since the history began
    done: float
    buyer: str
    method: str
    path: str
    status: int
    body: Any
    error: str | None = None

    @property
    def service(self) -> str:
        """The component that was meant to answer."""
        return self.path if self.method == DIRECT else components.service_of_path(self.path)

    @property
    def answered(self) -> bool:
        """The component answered: no transport error and no 5xx (a 4xx is an answer)."""
        return 0 < self.status < 500

    @property
    def via_gateway(self) -> bool:
        return self.method != DIRECT


def is_probe(exchange: Exchange) -> bool:
    return exchange.buyer.startswith(PROBE)


class History:
    """Every exchange in send order, kept in memory and appended to a JSONL file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.exchanges: list[Exchange] = []
        self._start = time.monotonic()
        self._wall = time.time()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = path.open("w")

    def now(self) -> float:
        return time.monotonic() - self._start

    def add(self, exchange: Exchange) -> None:
        self.exchanges.append(exchange)
        if self._file is not None:
            line = asdict(exchange)
            # Wall-clock time too, to read the history beside `ticketing up`'s log.
            line["at"] = datetime.fromtimestamp(self._wall + exchange.t, UTC).isoformat()
            self._file.write(json.dumps(line) + "\n")

    def between(self, start: float, end: float) -> Iterator[Exchange]:
        return (e for e in self.exchanges if start <= e.t <= end)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


async def send(
    history: History,
    client: httpx.AsyncClient,
    who: str,
    method: str,
    path: str,
    payload: dict[str, str] | None = None,
) -> httpx.Response | None:
    """Send one request, record it; None when no answer came."""
    sent = history.now()
    try:
        response = await client.request(method, path, json=payload)
    except httpx.HTTPError as exc:
        history.add(Exchange(sent, history.now(), who, method, path, 0, None, repr(exc)))
        return None
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text[:BODY_LIMIT]
    history.add(Exchange(sent, history.now(), who, method, path, response.status_code, body))
    return response


@dataclass(frozen=True)
class WorkloadConfig:
    tickets: int = 6
    buyers: int = 12
    duration: float = 20.0
    """Buyers start no new order after this many seconds; steps under way finish."""
    seed: int = 10
    # Relative weights of what a buyer does with a reserved ticket.
    pay: int = 4
    declined_then_pay: int = 2
    cancel: int = 2
    expire: int = 2


@dataclass
class Outcome:
    """What the workload did, for the checks that follow."""

    ticket_ids: list[str] = field(default_factory=list)
    orders: dict[str, str] = field(default_factory=dict)
    """Order id -> what its buyer chose to do with it."""


class Workload:
    def __init__(self, url: str, data_dir: Path, config: WorkloadConfig, history: History) -> None:
        self.url = url
        self.data_dir = data_dir
        self.config = config
        self.history = history
        self.outcome = Outcome()
        self.sold: set[str] = set()
        self._rng = random.Random(config.seed)
        self._clients: list[httpx.AsyncClient] = []
        self._probing = False

    def _client(self) -> httpx.AsyncClient:
        client = httpx.AsyncClient(base_url=self.url, timeout=REQUEST_TIMEOUT)
        self._clients.append(client)
        return client

    async def _signed_up(self, who: str) -> httpx.AsyncClient:
        client = self._client()
        email = f"{who}-{uuid.uuid4().hex[:12]}@example.com"
        body = {"email": email, "password": PASSWORD}
        response = await self._until_answered(client, who, "POST", "/api/users/signup", body)
        assert response is not None, f"{who} could not sign up"
        assert response.status_code == 201, f"{who} could not sign up: {response.text}"
        return client

    async def _until_answered(
        self,
        client: httpx.AsyncClient,
        who: str,
        method: str,
        path: str,
        payload: dict[str, str] | None = None,
        *,
        retry_404: bool = False,
    ) -> httpx.Response | None:
        """Repeat through an outage (no answer, 5xx; 404 too if asked) for STEP_PATIENCE."""
        deadline = time.monotonic() + STEP_PATIENCE
        while True:
            response = await send(self.history, client, who, method, path, payload)
            retry = response is None or response.status_code >= 500
            retry = retry or (retry_404 and response is not None and response.status_code == 404)
            if not retry or time.monotonic() > deadline:
                return response
            await asyncio.sleep(0.3)

    async def setup(self) -> None:
        """Sign up a seller, list the tickets, sign up the buyers and the prober."""
        seller = await self._signed_up("seller")
        for number in range(self.config.tickets):
            body = {"title": f"Chaos {number}", "price": str(10 + number)}
            created = await self._until_answered(seller, "seller", "POST", "/api/tickets", body)
            assert created is not None, "could not list a ticket"
            assert created.status_code == 201, f"could not list a ticket: {created.text}"
            self.outcome.ticket_ids.append(created.json()["id"])
        self._buyers = [await self._signed_up(f"buyer{n}") for n in range(self.config.buyers)]
        self._prober = await self._signed_up(PROBE)

    async def run(self) -> None:
        deadline = time.monotonic() + self.config.duration
        await asyncio.gather(
            *(self._buyer(f"buyer{n}", c, deadline) for n, c in enumerate(self._buyers))
        )

    async def _buyer(self, who: str, client: httpx.AsyncClient, deadline: float) -> None:
        rng = random.Random(f"{self.config.seed}-{who}")
        config = self.config
        actions = ["pay", "declined_then_pay", "cancel", "expire"]
        weights = [config.pay, config.declined_then_pay, config.cancel, config.expire]
        while time.monotonic() < deadline:
            open_tickets = [t for t in self.outcome.ticket_ids if t not in self.sold]
            if not open_tickets:
                return
            ticket_id = rng.choice(open_tickets)
            ordered = await send(
                self.history, client, who, "POST", "/api/orders", {"ticketId": ticket_id}
            )
            if ordered is None or ordered.status_code != 201:
                # 409: another buyer holds it; 404: orders has not learned of it; 429: this
                # buyer cancelled or let expire an order of it a moment ago; 5xx: outage.
                await asyncio.sleep(rng.uniform(0.1, 0.5))
                continue
            order_id: str = ordered.json()["id"]
            action = rng.choices(actions, weights)[0]
            self.outcome.orders[order_id] = action
            if action == "pay":
                paid = await self._pay(client, who, order_id, VISA)
            elif action == "declined_then_pay":
                await self._pay(client, who, order_id, DECLINED)
                paid = await self._pay(client, who, order_id, VISA)
            elif action == "cancel":
                paid = None
                await self._until_answered(client, who, "DELETE", f"/api/orders/{order_id}")
            else:
                paid = None  # left to expire
            if paid is not None and paid.status_code == 201:
                self.sold.add(ticket_id)
            await asyncio.sleep(rng.uniform(0.0, 0.3))

    async def _pay(
        self, client: httpx.AsyncClient, who: str, order_id: str, token: str
    ) -> httpx.Response | None:
        # 404 until payments has replicated the order: the buyer tries again.
        return await self._until_answered(
            client,
            who,
            "POST",
            "/api/payments",
            {"orderId": order_id, "token": token},
            retry_404=True,
        )

    # -- probing -------------------------------------------------------------------------

    async def probe(self, stop: asyncio.Event) -> None:
        """Every PROBE_INTERVAL, ask each component whether it answers, until ``stop``."""
        prober = self._prober
        gateway_probes: list[tuple[str, str, dict[str, str] | None]] = [
            ("GET", "/api/users/currentuser", None),
            ("GET", "/api/tickets?limit=1", None),
            ("GET", "/api/orders", None),
            # Payments has no read route; an empty body is a 400 from payments itself.
            ("POST", "/api/payments", {}),
            ("GET", "/", None),
        ]
        assert len(gateway_probes) == GATEWAY_PROBES
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT) as direct:
            for number in itertools.count():
                if stop.is_set():
                    return
                # The round's number in the buyer field groups the probes of one round.
                who = f"{PROBE}#{number}"
                started = time.monotonic()
                await asyncio.gather(
                    *(
                        send(self.history, prober, who, method, path, body)
                        for method, path, body in gateway_probes
                    ),
                    *(
                        self._probe_directly(direct, who, name)
                        for name in ("expiration", *components.SERVERS)
                    ),
                )
                pause = PROBE_INTERVAL - (time.monotonic() - started)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=max(pause, 0.05))

    async def _probe_directly(self, client: httpx.AsyncClient, who: str, name: str) -> None:
        """A component outside the gateway: its /readyz or health page, or its port."""
        sent = self.history.now()
        status, error = 0, None
        port = await asyncio.to_thread(components.port_of, self.data_dir, name)
        if port is None:
            error = "no live process listening"
        elif name in ("expiration", STRIPE_SANDBOX_NAME):
            path = "/readyz" if name == "expiration" else "/_sandbox/health"
            try:
                status = (await client.get(f"http://{HOST}:{port}{path}")).status_code
            except httpx.HTTPError as exc:
                error = repr(exc)
        elif await asyncio.to_thread(components.accepts, port):
            status = 200
        else:
            error = "connection refused"
        self.history.add(Exchange(sent, self.history.now(), who, DIRECT, name, status, None, error))

    async def close(self) -> None:
        for client in self._clients:
            await client.aclose()
