"""Flash-sale load benchmark, against a running ``ticketing up``.

Run with ``uv run python bench/flash_sale.py [--data-dir .ticketing]`` while
``ticketing up`` runs with that data dir. The gateway's URL and every process the
stack started (PIDs) are read from the data dir's instance record, as
``ticketing status`` reads them. The stack must run with limits a load test does
not trip over (the defaults are meant for people)::

    MAX_OPEN_ORDERS_PER_USER=100000 ORDER_RATE_PER_USER=1000000/minute \\
    ORDER_RATE_PER_CLIENT=1000000/minute SIGNUP_RATE_PER_CLIENT=1000000/hour \\
    SESSION_TOKEN_TTL_SECONDS=86400 uv run ticketing up

The script prints the values the running orders and auth processes have.

Sign-ups (one seller per phase, ``--buyers`` buyers, each its own session) come
first and are not measured. Then, in one run, each phase through the gateway:

1. **baseline** -- ``GET /api/users/currentuser`` without a cookie, ``--concurrency``
   at once: requests/s, p50/p99, server CPU per request;
2. **replication** -- one seller lists ``--tickets`` per-seat tickets at once; the lag
   of each until orders' replica has it. Orders' ``ticket:created`` consumer applies
   events in stream order and acks them after its commit, so its ack floor (read
   from JetStream every ``--sample`` seconds) reaching *k* means the first *k*
   tickets published are in the replica; the lag of the *k*-th ticket (by
   the time its 201 came back) is when the ack floor reached *k* minus that time;
3. **purchases** -- ``--concurrency`` buyers buy those tickets, each a distinct ticket
   (``POST /api/orders``): purchases/s, p50/p99, server CPU per purchase by process,
   over the requests alone and until every consumer and outbox is drained; the
   fan-out lag of each purchase until tickets' ``order:created`` consumer applied it
   (same ack-floor method), and until nothing is pending anywhere;
4. **flash sale** -- ``--buyers`` buyers for ``--seats`` per-seat tickets of another
   seller: each buyer tries tickets at random among those not yet known to be taken
   (as a page showing availability would tell them) until one order is created or
   none is left. Counts the 201s, checks through the APIs that no ticket has two
   holders (the seller's listings and every buyer's orders), and the time to sell out;
5. **general admission** -- the same buyers for one ``--seats``-unit general-admission
   listing (``POST /api/tickets {title, price, quantity}``), each asking for one unit
   (``POST /api/orders {ticketId, quantity: 1}``) until a 201 or a 409 (not enough
   left): exactly ``--seats`` 201s, the time to sell out, then the listing's counts
   (``GET /api/tickets/{id}``: held, available) and the units the buyers' orders
   hold. A stack without general admission (its create answers without ``units``)
   is reported as such.

Last, one line with issue 14's targets (CPU per purchase until drained, purchases/s,
sell-out time of both sales, replication p99) and whether each was met.

Server CPU is utime + stime (and that of reaped children) from ``/proc/<pid>/stat``
of every process ``ticketing up`` started and their descendants (PostgreSQL's
backends), grouped by the process ``ticketing up`` started, plus ``ticketing up``
itself; the delta over a phase divided by its requests. The load client's own CPU
is shown apart. Talks to 127.0.0.1 only; changes nothing but what its requests do.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import nats
from nats.aio.client import Client as NatsClient
from nats.js.errors import NotFoundError

from ticketing_common.events.contracts import Subjects
from ticketing_common.session import COOKIE_NAME
from ticketing_common.spec import ENTRY_POINT_GROUP
from ticketing_devstack.credentials import Credentials
from ticketing_devstack.instance import InstanceInfo, running_instance
from ticketing_expiration.service import percentile

PASSWORD = "flash-sale-bench-password"  # noqa: S105 -- the buyers' made-up accounts
UP = "ticketing up"
DEFAULT = "(default)"  # a setting the process does not set
UNKNOWN = "?"  # a setting of a process that is gone
# What the run needs the stack to allow; shown as the running processes have them.
SETTINGS = {
    "orders": ("MAX_OPEN_ORDERS_PER_USER", "ORDER_RATE_PER_USER", "ORDER_RATE_PER_CLIENT"),
    # Sessions outlive the run: on a loaded machine the sign-ups alone can take
    # longer than the default 15-minute token, and every purchase would be a 401.
    "auth": ("SIGNUP_RATE_PER_CLIENT", "SESSION_TOKEN_TTL_SECONDS"),
}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
WAIT_TIMEOUT = 300.0
ACTIVE = ("created", "awaiting:payment", "complete")


class Refused(Exception):
    """The stack refused what the run needs (a rate limit, an unexpected answer)."""


# --- pure helpers -------------------------------------------------------------------


@dataclass(frozen=True)
class ProcStat:
    pid: int
    ppid: int
    ticks: int
    """utime + stime of the process and cutime + cstime of its reaped children."""


def parse_stat(text: str) -> ProcStat:
    """One ``/proc/<pid>/stat`` line. The command name is in parentheses and may hold
    spaces or parentheses itself, so the fields are counted from its last ')'."""
    head, _, tail = text.rpartition(")")
    pid = int(head.split("(", 1)[0])
    fields = tail.split()
    # fields[0] is field 3 (state): ppid is field 4, utime..cstime fields 14-17.
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return ProcStat(pid, ppid, utime + stime + cutime + cstime)


def ticks_by_group(stats: Iterable[ProcStat], roots: Mapping[int, str]) -> dict[str, int]:
    """CPU ticks of every process under one of ``roots`` (pid -> group), each counted
    in its nearest root's group. Summing the live processes' own and reaped
    children's ticks counts an exited process once (in whoever reaped it)."""
    by_pid = {stat.pid: stat for stat in stats}
    group_of: dict[int, str | None] = {}

    def group(pid: int) -> str | None:
        chain: list[int] = []
        found: str | None = None
        while pid in by_pid and pid not in group_of:
            if pid in roots:
                found = roots[pid]
                break
            chain.append(pid)
            pid = by_pid[pid].ppid
        else:
            found = group_of.get(pid)
        for member in chain:
            group_of[member] = found
        return found

    totals: dict[str, int] = {}
    for pid, stat in by_pid.items():
        name = group(pid)
        if name is not None:
            totals[name] = totals.get(name, 0) + stat.ticks
    return totals


def reach_lags(listed: Sequence[float], samples: Sequence[tuple[float, int]]) -> list[float]:
    """The lag of the k-th event (``listed``: when each was acknowledged, any order) until
    a consumer that applies events in order had applied it: the first sample
    ``(time, applied count)`` with a count >= k, minus the k-th time. Events never
    reached are left out; a lag below zero (the event applied before its 201 came
    back) counts as zero."""
    ordered = sorted(listed)
    lags = []
    index = 0
    for at, count in sorted(samples):
        while index < len(ordered) and index < count:
            lags.append(max(0.0, at - ordered[index]))
            index += 1
    return lags


def ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f}"


def lag_line(label: str, lags: Sequence[float], total: int) -> str:
    return (
        f"{label}: p50 {ms(percentile(lags, 50))} ms, p99 {ms(percentile(lags, 99))} ms, "
        f"max {ms(max(lags) if lags else None)} ms ({len(lags)} of {total} reached)"
    )


# Issue 14's "done when", on this benchmark's figures.
TARGET_CPU_MS = 6.0
TARGET_PURCHASES_PER_SECOND = 4 * 66.6
TARGET_SOLD_OUT_SECONDS = 2.0
TARGET_REPLICATION_P99_SECONDS = 1.0


@dataclass
class Figures:
    """What the run measured that the issue's targets are about (None: not measured)."""

    cpu_per_purchase_ms: float | None = None
    """All processes, from the first purchase until every consumer and outbox drained."""
    purchases_per_second: float | None = None
    replication_p99: float | None = None
    sold_out_per_seat: float | None = None
    sold_out_general_admission: float | None = None


def target_summary(figures: Figures) -> str:
    """One line: each of the issue's targets, the figure and whether it was met."""

    def check(label: str, value: float | None, shown: str, met: bool) -> str:
        if value is None:
            return f"{label} - (not measured)"
        return f"{label} {shown} {'met' if met else 'NOT met'}"

    cpu, rate = figures.cpu_per_purchase_ms, figures.purchases_per_second
    lag = figures.replication_p99
    parts = [
        check(
            f"CPU/purchase <= {TARGET_CPU_MS:g} ms:",
            cpu,
            f"{cpu or 0:.2f} ms",
            cpu is not None and cpu <= TARGET_CPU_MS,
        ),
        check(
            f"purchases/s >= {TARGET_PURCHASES_PER_SECOND:.0f}:",
            rate,
            f"{rate or 0:.1f}",
            rate is not None and rate >= TARGET_PURCHASES_PER_SECOND,
        ),
    ]
    for kind, sold_out in (
        ("per-seat", figures.sold_out_per_seat),
        ("general admission", figures.sold_out_general_admission),
    ):
        parts.append(
            check(
                f"sold out < {TARGET_SOLD_OUT_SECONDS:g} s ({kind}):",
                sold_out,
                f"{sold_out or 0:.2f} s",
                sold_out is not None and sold_out < TARGET_SOLD_OUT_SECONDS,
            )
        )
    parts.append(
        check(
            f"replication p99 <= {TARGET_REPLICATION_P99_SECONDS:g} s:",
            lag,
            f"{ms(lag)} ms",
            lag is not None and lag <= TARGET_REPLICATION_P99_SECONDS,
        )
    )
    return "targets: " + "; ".join(parts)


def is_general_admission_listing(status: int, body: object) -> bool:
    """A create answered as a stack with general admission answers it: 201 with the
    listing's ``units``. A stack without answers 400 (or ignores ``quantity`` and lists
    one seat): no ``units`` in the body."""
    return status == 201 and isinstance(body, dict) and isinstance(body.get("units"), dict)


# --- the stack ----------------------------------------------------------------------


def setting_of(pids: Mapping[str, int], process: str, name: str) -> str:
    """An environment variable of a running process: DEFAULT when it does not set it,
    UNKNOWN when the process is gone."""
    try:
        raw = Path(f"/proc/{pids[process]}/environ").read_bytes()
    except (KeyError, OSError):
        return UNKNOWN
    for item in raw.split(b"\0"):
        key, _, value = item.decode(errors="replace").partition("=")
        if key == name:
            return value
    return DEFAULT


class Stack:
    """The running stack: its URL, its processes' CPU, and what is pending in it.

    Pending work is read at its source, not through the services' ``/metrics``: a
    scrape makes a service ask JetStream about each of its consumers (about 5 ms of
    its CPU and NATS's), and probing every 50 ms through it spent a tenth of a core
    in the purchases and more in a drain, on the processes being measured. Here one
    ``$JS.API.CONSUMER.LIST`` (as the operators' NATS user, whose password
    ``ticketing up`` keeps in the data dir) gives every consumer's pending and ack
    floor, and one ``count(*)`` per database the outbox rows not yet published.
    """

    def __init__(
        self, info: InstanceInfo, nats: NatsClient, stream: str, outboxes: list[asyncpg.Connection]
    ) -> None:
        self.url = info.url
        self.roots = {info.pid: UP} | {c.pid: c.name for c in info.children if c.pid}
        self.pids = {c.name: c.pid for c in info.children if c.pid}
        self.nats = nats
        self.stream = stream
        self.outboxes = outboxes

    @classmethod
    async def connect(cls, info: InstanceInfo, data_dir: Path) -> Stack:
        """The stack, connected to its NATS and to each database that has an outbox."""
        pids = {c.name: c.pid for c in info.children if c.pid}
        services = sorted(
            {entry.name for entry in entry_points(group=ENTRY_POINT_GROUP)}.intersection(pids)
        )
        url = setting_of(pids, services[0], "NATS_URL")
        namespace = setting_of(pids, services[0], "NATS_NAMESPACE")
        stream = Subjects("ticketing" if namespace == DEFAULT else namespace).stream
        client = await nats.connect(Credentials(data_dir).admin_nats_url(url))
        outboxes: list[asyncpg.Connection] = []
        for name in services:
            database = setting_of(pids, name, "DATABASE_URL")
            if database in (DEFAULT, UNKNOWN):
                continue
            connection = await asyncpg.connect(database)
            if await connection.fetchval("SELECT to_regclass('outbox') IS NOT NULL"):
                outboxes.append(connection)
            else:
                await connection.close()
        return cls(info, client, stream, outboxes)

    async def close(self) -> None:
        for connection in self.outboxes:
            await connection.close()
        await self.nats.close()

    def cpu(self) -> dict[str, int]:
        stats: list[ProcStat] = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    stats.append(parse_stat(Path(entry.path, "stat").read_text()))
                except (OSError, ValueError, IndexError):
                    continue  # gone since the listing
        return ticks_by_group(stats, self.roots)

    def setting(self, process: str, name: str) -> str:
        return setting_of(self.pids, process, name)

    async def handled(self, service: str, event_slug: str) -> int:
        """Events ``service``'s consumer of ``event_slug`` (``ticket-created``) has acked,
        in order: its ack floor. A listener acks after its commit, so this many are
        applied."""
        try:
            consumer = await self.nats.jetstream().consumer_info(
                self.stream, f"{service}-{event_slug}"
            )
        except NotFoundError:
            return 0  # not made yet: nothing applied
        return consumer.ack_floor.consumer_seq if consumer.ack_floor else 0

    async def pending(self) -> int:
        """Events not yet applied by any consumer, and outbox rows not yet published."""
        consumers = await self.nats.jetstream().consumers_info(self.stream)
        total = sum((c.num_pending or 0) + (c.num_ack_pending or 0) for c in consumers)
        for connection in self.outboxes:
            total += await connection.fetchval("SELECT count(*) FROM outbox")
        return total


def cpu_ms(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, float]:
    return {
        name: (after[name] - before.get(name, 0)) * 1000 / CLOCK_TICKS
        for name in after
        if after[name] - before.get(name, 0) > 0
    }


@dataclass
class CpuColumn:
    title: str
    per: int
    spent: dict[str, float]


def print_cpu(columns: Sequence[CpuColumn]) -> None:
    names = sorted({n for c in columns for n in c.spent}, key=lambda n: (n == UP, n))
    print("| process | " + " | ".join(c.title for c in columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for name in names:
        cells = [f"{c.spent.get(name, 0.0) / max(c.per, 1):.2f}" for c in columns]
        print(f"| {name} | " + " | ".join(cells) + " |")
    totals = [cpu_per_request(c) for c in columns]
    print("| **all** | " + " | ".join(f"**{t:.2f}**" for t in totals) + " |")
    print("| **all, in no-op GETs** | " + " | ".join(relative_cpu(totals)) + " |")


def cpu_per_request(column: CpuColumn) -> float:
    return sum(column.spent.values()) / max(column.per, 1)


def relative_cpu(totals: Sequence[float]) -> list[str]:
    """Each phase's CPU per request over the first phase's (the no-op GET, this run's
    baseline): how many no-op requests one request of the phase costs. The machine's
    speed drifts between runs (the same code has cost a fifth more CPU per request in
    one run than in the next); a phase and the baseline of the same run share it."""
    baseline = totals[0] if totals else 0.0
    if baseline <= 0:
        return ["-" for _ in totals]
    return [f"{total / baseline:.1f}x" for total in totals]


def load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def client_cpu() -> float:
    times = os.times()
    return times.user + times.system


# --- load ---------------------------------------------------------------------------


@dataclass
class Timed:
    status: int
    latency: float
    done: float
    body: Any = None


@dataclass(frozen=True)
class Buyer:
    email: str
    cookie: str


def gateway_client(url: str, connections: int) -> aiohttp.ClientSession:
    """The load client: aiohttp, whose CPU per request is a small fraction of httpx's, so
    the client takes less of the machine it shares with the stack (its own CPU is shown
    apart). Sessions are sent per request; a shared jar would mix the buyers' cookies."""
    return aiohttp.ClientSession(
        url,
        connector=aiohttp.TCPConnector(limit=connections),
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=60),
    )


async def timed(
    client: aiohttp.ClientSession,
    method: str,
    path: str,
    *,
    cookie: str | None = None,
    body: dict[str, Any] | None = None,
) -> Timed:
    headers = {"Cookie": f"{COOKIE_NAME}={cookie}"} if cookie else None
    started = time.perf_counter()
    try:
        async with client.request(method, path, json=body, headers=headers) as response:
            status, raw = response.status, await response.read()
    except (aiohttp.ClientError, TimeoutError):
        now = time.perf_counter()
        return Timed(0, now - started, now)
    now = time.perf_counter()
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    return Timed(status, now - started, now, parsed)


async def run_pool(count: int, concurrency: int, work: Callable[[int], Awaitable[None]]) -> None:
    """``work(i)`` for i in range(count), at most ``concurrency`` at once."""
    indices = iter(range(count))

    async def worker() -> None:
        for index in indices:
            await work(index)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, count))))


def session_cookie(response: aiohttp.ClientResponse) -> str:
    """The session a sign-up set, read from its headers (the client's jar keeps none)."""
    for header in response.headers.getall("Set-Cookie", []):
        name, _, rest = header.partition("=")
        if name.strip() == COOKIE_NAME:
            return rest.split(";", 1)[0]
    raise Refused("the sign-up set no session cookie")


async def sign_up(client: aiohttp.ClientSession, count: int, concurrency: int) -> list[Buyer]:
    run = uuid.uuid4().hex[:8]
    people: list[Buyer | None] = [None] * count

    async def one(index: int) -> None:
        email = f"bench-{run}-{index}@example.com"
        body = {"email": email, "password": PASSWORD}
        async with client.post("/api/users/signup", json=body) as response:
            if response.status == 429:
                raise Refused(
                    "sign-up refused (429): start the stack with SIGNUP_RATE_PER_CLIENT high"
                )
            if response.status != 201:
                text = await response.text()
                raise Refused(f"sign-up failed: {response.status} {text[:200]}")
            people[index] = Buyer(email, session_cookie(response))

    await run_pool(count, concurrency, one)
    return [person for person in people if person is not None]


class Sampler:
    """Reads a counter every ``interval`` seconds as ``(time, value - base)`` until it
    reaches ``target`` (which may be set once known) or the deadline passes."""

    def __init__(self, read: Callable[[], Awaitable[int]], interval: float) -> None:
        self.read = read
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self.target: int | None = None
        self.reached_at: float | None = None
        self.base = 0

    async def start(self) -> None:
        self.base = await self.read()

    async def run(self, deadline: float) -> None:
        while time.perf_counter() < deadline:
            value = await self.read() - self.base
            now = time.perf_counter()
            self.samples.append((now, value))
            if self.target is not None and value >= self.target:
                self.reached_at = now
                return
            await asyncio.sleep(self.interval)


async def until_in_orders_replica(
    stack: Stack, count: int, interval: float
) -> tuple[Sampler, asyncio.Task[None]]:
    """A running sampler of the ack floor of orders' ``ticket:created`` consumer, done
    when it has grown by ``count`` (or at the run's wait limit): whatever is listed
    next is in the replica then."""
    sampler = Sampler(lambda: stack.handled("orders", "ticket-created"), interval)
    sampler.target = count
    await sampler.start()
    return sampler, asyncio.create_task(sampler.run(time.perf_counter() + WAIT_TIMEOUT))


async def until_drained(stack: Stack, interval: float, deadline: float) -> float | None:
    """When nothing was pending any more (consumers, outboxes); None at the deadline."""
    while time.perf_counter() < deadline:
        if await stack.pending() == 0:
            return time.perf_counter()
        await asyncio.sleep(interval)
    return None


def latency_line(label: str, answers: Sequence[Timed], elapsed: float, ok: int) -> str:
    latencies = [a.latency for a in answers]
    statuses = ", ".join(
        f"{status}: {n}" for status, n in sorted(Counter(a.status for a in answers).items())
    )
    return (
        f"{label}: {ok} in {elapsed:.2f} s = {ok / elapsed:.1f}/s; latency p50 "
        f"{ms(percentile(latencies, 50))} ms, p99 {ms(percentile(latencies, 99))} ms "
        f"(answers {statuses})"
    )


async def list_tickets(
    client: aiohttp.ClientSession, seller: Buyer, count: int, concurrency: int, title: str
) -> tuple[list[str], list[float]]:
    """Lists ``count`` per-seat tickets; their ids and when each 201 came back."""
    ids: list[str] = [""] * count
    listed: list[float] = []

    async def one(index: int) -> None:
        body = {"title": f"{title} {index}", "price": 40}
        answer = await timed(client, "POST", "/api/tickets", cookie=seller.cookie, body=body)
        if answer.status != 201:
            raise Refused(f"listing failed: {answer.status} {answer.body}")
        ids[index] = answer.body["id"]
        listed.append(answer.done)

    await run_pool(count, concurrency, one)
    return ids, listed


async def baseline(
    stack: Stack, client: aiohttp.ClientSession, requests: int, concurrency: int
) -> CpuColumn:
    async def warm(_: int) -> None:
        await timed(client, "GET", "/api/users/currentuser")

    await run_pool(min(requests, 200), concurrency, warm)
    answers: list[Timed] = []

    async def one(_: int) -> None:
        answers.append(await timed(client, "GET", "/api/users/currentuser"))

    before, own, started = stack.cpu(), client_cpu(), time.perf_counter()
    await run_pool(requests, concurrency, one)
    elapsed = time.perf_counter() - started
    spent = cpu_ms(before, stack.cpu())
    ok = sum(1 for a in answers if a.status == 200)
    print(latency_line("no-op GET /api/users/currentuser (no cookie)", answers, elapsed, ok))
    print(
        f"  server CPU {sum(spent.values()) / max(ok, 1):.2f} ms/request (all processes); "
        f"load client {(client_cpu() - own) * 1000 / max(ok, 1):.2f} ms/request"
    )
    return CpuColumn("no-op GET, ms/request", ok, spent)


async def replication(
    stack: Stack,
    client: aiohttp.ClientSession,
    seller: Buyer,
    count: int,
    args: argparse.Namespace,
    figures: Figures,
) -> tuple[list[str], CpuColumn]:
    """Lists ``count`` tickets at once and measures when orders' replica has each."""
    sampler, watching = await until_in_orders_replica(stack, count, args.sample)
    before, started = stack.cpu(), time.perf_counter()
    ids, listed = await list_tickets(client, seller, count, args.concurrency, "Seat")
    listed_at = time.perf_counter()
    await watching
    spent = cpu_ms(before, stack.cpu())
    print(
        f"listing: {count} tickets in {listed_at - started:.2f} s = "
        f"{count / (listed_at - started):.1f}/s ({args.concurrency} at once, one seller)"
    )
    lags = reach_lags(listed, sampler.samples)
    figures.replication_p99 = percentile(lags, 99) if len(lags) == count else None
    print("  " + lag_line("replication lag, 201 -> in orders' replica", lags, count))
    if sampler.reached_at is not None:
        print(
            f"  all {count} in orders' replica "
            f"{ms(sampler.reached_at - listed_at)} ms after the last 201"
        )
    return ids, CpuColumn("listing, ms/ticket until replicated", count, spent)


async def purchases(
    stack: Stack,
    client: aiohttp.ClientSession,
    buyers: Sequence[Buyer],
    seller: Buyer,
    ticket_ids: Sequence[str],
    args: argparse.Namespace,
    figures: Figures,
) -> list[CpuColumn]:
    """Each buyer buys distinct tickets, one request at a time, until none is left."""
    sampler = Sampler(lambda: stack.handled("tickets", "order-created"), args.sample)
    await sampler.start()
    watching = asyncio.create_task(sampler.run(time.perf_counter() + WAIT_TIMEOUT))
    tickets = iter(ticket_ids)
    answers: list[Timed] = []

    async def buy(buyer: Buyer) -> None:
        for ticket_id in tickets:
            body = {"ticketId": ticket_id}
            answers.append(
                await timed(client, "POST", "/api/orders", cookie=buyer.cookie, body=body)
            )

    before, own, started = stack.cpu(), client_cpu(), time.perf_counter()
    await asyncio.gather(*(buy(buyer) for buyer in buyers))
    ended = time.perf_counter()
    at_end, own_spent = stack.cpu(), client_cpu() - own
    created = [a for a in answers if a.status == 201]
    sampler.target = len(created)
    await watching
    drained = await until_drained(stack, args.sample, time.perf_counter() + WAIT_TIMEOUT)
    at_drained = stack.cpu()
    print(
        latency_line(
            f"purchases ({len(buyers)} buyers at once)", answers, ended - started, len(created)
        )
    )
    lags = reach_lags([a.done for a in created], sampler.samples)
    print("  " + lag_line("fan-out lag, 201 -> applied by tickets", lags, len(created)))
    if sampler.reached_at is not None:
        print(
            f"  tickets had applied every purchase "
            f"{ms(sampler.reached_at - ended)} ms after the last 201"
        )
    if drained is not None:
        print(f"  every consumer and outbox drained {ms(drained - ended)} ms after the last 201")
    else:
        print(f"  ! still pending {WAIT_TIMEOUT:.0f} s after the last 201")
    mine = await timed(client, "GET", "/api/tickets/mine", cookie=seller.cookie)
    print(
        f"  tickets shows {mine.body['totals']['reserved']} of the seller's "
        f"{len(ticket_ids)} reserved"
    )
    print(f"  load client CPU {own_spent * 1000 / max(len(created), 1):.2f} ms/purchase")
    until_drained_spent = cpu_ms(before, at_drained)
    if created:
        figures.purchases_per_second = len(created) / (ended - started)
        if drained is not None:
            figures.cpu_per_purchase_ms = sum(until_drained_spent.values()) / len(created)
    return [
        CpuColumn("purchase, ms (requests only)", len(created), cpu_ms(before, at_end)),
        CpuColumn("purchase, ms (until drained)", len(created), until_drained_spent),
    ]


@dataclass(frozen=True)
class Win:
    done: float
    ticket_id: str
    order_id: str


async def flash_sale(
    stack: Stack,
    client: aiohttp.ClientSession,
    buyers: Sequence[Buyer],
    seller: Buyer,
    args: argparse.Namespace,
    figures: Figures,
) -> CpuColumn:
    seats = args.seats
    in_replica, watching = await until_in_orders_replica(stack, seats, args.sample)
    ids, _ = await list_tickets(client, seller, seats, args.concurrency, "Flash seat")
    await watching
    if in_replica.reached_at is None:
        raise Refused("the sale's tickets did not reach orders' replica")
    available = set(ids)
    wins: list[Win] = []
    answers: list[Timed] = []

    async def buyer(index: int, person: Buyer) -> None:
        rng = random.Random(index)  # noqa: S311 -- a reproducible choice, not a secret
        failures = 0
        while available and failures < 3:
            ticket_id = rng.choice(sorted(available))
            body = {"ticketId": ticket_id}
            answer = await timed(client, "POST", "/api/orders", cookie=person.cookie, body=body)
            answers.append(answer)
            if answer.status == 201:
                wins.append(Win(answer.done, ticket_id, answer.body["id"]))
                available.discard(ticket_id)
                return
            if answer.status == 409:  # reserved by someone else: try another
                available.discard(ticket_id)
            else:
                failures += 1

    before, started = stack.cpu(), time.perf_counter()
    await asyncio.gather(*(buyer(index, person) for index, person in enumerate(buyers)))
    finished = time.perf_counter()
    spent = cpu_ms(before, stack.cpu())
    print(
        latency_line(
            f"flash sale, {len(buyers)} buyers for {seats} per-seat tickets "
            f"(order requests; {args.sale_connections} connections)",
            answers,
            finished - started,
            len(wins),
        )
    )
    sold_out = max(w.done for w in wins) - started if len(wins) == seats else None
    figures.sold_out_per_seat = sold_out
    print(
        f"  201s: {len(wins)} for {len(set(w.ticket_id for w in wins))} distinct tickets; "
        f"sold out in {'-' if sold_out is None else f'{sold_out:.2f} s'}; "
        f"every buyer done in {finished - started:.2f} s"
    )
    await verify_sale(stack, client, buyers, seller, ids, wins, args)
    return CpuColumn("flash sale, ms/order request", len(answers), spent)


async def verify_sale(
    stack: Stack,
    client: aiohttp.ClientSession,
    buyers: Sequence[Buyer],
    seller: Buyer,
    ids: Sequence[str],
    wins: Sequence[Win],
    args: argparse.Namespace,
) -> None:
    """Through the APIs: each ticket is held by at most one order, in tickets and in orders."""
    await until_drained(stack, args.sample, time.perf_counter() + WAIT_TIMEOUT)
    mine = await timed(client, "GET", "/api/tickets/mine", cookie=seller.cookie)
    on_sale = set(ids)
    listed = [t for t in mine.body["listings"] if t["id"] in on_sale]
    seller_orders = {t["orderId"] for t in listed if t["orderId"]}
    won_orders = {w.order_id for w in wins}
    holders: Counter[str] = Counter()

    async def orders_of(index: int) -> None:
        answer = await timed(client, "GET", "/api/orders", cookie=buyers[index].cookie)
        if answer.status != 200:
            raise Refused(f"orders of a buyer: {answer.status} {answer.body}")
        for order in answer.body:
            if order["ticket"]["id"] in on_sale and order["status"] in ACTIVE:
                holders[order["ticket"]["id"]] += 1

    await run_pool(len(buyers), args.concurrency, orders_of)
    doubled = [ticket for ticket, n in holders.items() if n > 1]
    same = "the same orders as" if seller_orders == won_orders else "NOT the orders of"
    held = sum(holders.values())
    print(
        f"  checked: tickets shows {len(seller_orders)} of {len(ids)} reserved, "
        f"{same} the 201s; buyers' orders hold {held} of them; "
        f"tickets with two holders: {len(doubled)}; oversold: {max(0, held - len(ids))}"
    )


async def general_admission_sale(
    stack: Stack,
    client: aiohttp.ClientSession,
    buyers: Sequence[Buyer],
    seller: Buyer,
    args: argparse.Namespace,
    figures: Figures,
) -> CpuColumn | None:
    """``--buyers`` buyers for one ``--seats``-unit general-admission listing, one unit
    each: every buyer asks until a 201 or a 409 (none left). Exactly ``--seats`` 201s
    is right; then the listing's counts and the buyers' orders are checked."""
    units = args.seats
    label = f"flash sale, {len(buyers)} buyers for a {units}-unit general-admission listing"
    in_replica, watching = await until_in_orders_replica(stack, 1, args.sample)
    body = {"title": "Flash standing", "price": 40, "quantity": units}
    listing = await timed(client, "POST", "/api/tickets", cookie=seller.cookie, body=body)
    if not is_general_admission_listing(listing.status, listing.body):
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
        print(f"{label}: general admission: not supported by this stack")
        return None
    ticket_id = listing.body["id"]
    await watching
    if in_replica.reached_at is None:
        raise Refused("the general-admission listing did not reach orders' replica")
    wins: list[Win] = []
    answers: list[Timed] = []
    left = True

    async def buyer(person: Buyer) -> None:
        nonlocal left
        failures = 0
        while left and failures < 3:
            body = {"ticketId": ticket_id, "quantity": 1}
            answer = await timed(client, "POST", "/api/orders", cookie=person.cookie, body=body)
            answers.append(answer)
            if answer.status == 201:
                wins.append(Win(answer.done, ticket_id, answer.body["id"]))
                return
            if answer.status == 409:  # not enough left: the sale is over for everyone
                left = False
                return
            failures += 1

    before, started = stack.cpu(), time.perf_counter()
    await asyncio.gather(*(buyer(person) for person in buyers))
    finished = time.perf_counter()
    spent = cpu_ms(before, stack.cpu())
    print(
        latency_line(
            f"{label} (order requests; {args.sale_connections} connections)",
            answers,
            finished - started,
            len(wins),
        )
    )
    refusals = Counter(
        str((a.body or {}).get("errors", [{}])[0].get("message"))
        for a in answers
        if a.status == 409 and isinstance(a.body, dict)
    )
    sold_out = max(w.done for w in wins) - started if len(wins) == units else None
    figures.sold_out_general_admission = sold_out
    print(
        f"  201s: {len(wins)} (must be {units}); 409s: "
        + (", ".join(f"{n} x {message!r}" for message, n in refusals.items()) or "none")
        + f"; sold out in {'-' if sold_out is None else f'{sold_out:.2f} s'}; "
        f"every buyer done in {finished - started:.2f} s"
    )
    await verify_general_admission(stack, client, buyers, ticket_id, wins, args)
    return CpuColumn("GA flash sale, ms/order request", len(answers), spent)


async def verify_general_admission(
    stack: Stack,
    client: aiohttp.ClientSession,
    buyers: Sequence[Buyer],
    ticket_id: str,
    wins: Sequence[Win],
    args: argparse.Namespace,
) -> None:
    """Through the APIs: the listing's counts, and the units the buyers' orders hold."""
    await until_drained(stack, args.sample, time.perf_counter() + WAIT_TIMEOUT)
    listing = await timed(client, "GET", f"/api/tickets/{ticket_id}")
    units = listing.body.get("units", {}) if isinstance(listing.body, dict) else {}
    won_orders = {w.order_id for w in wins}
    held = 0
    holding_orders: set[str] = set()

    async def orders_of(index: int) -> None:
        nonlocal held
        answer = await timed(client, "GET", "/api/orders", cookie=buyers[index].cookie)
        if answer.status != 200:
            raise Refused(f"orders of a buyer: {answer.status} {answer.body}")
        for order in answer.body:
            if order["ticket"]["id"] == ticket_id and order["status"] in ACTIVE:
                held += int(order.get("quantity", 1))
                holding_orders.add(order["id"])

    await run_pool(len(buyers), args.concurrency, orders_of)
    same = "the same orders as" if holding_orders == won_orders else "NOT the orders of"
    print(
        f"  checked: the listing shows total {units.get('total')}, held {units.get('held')}, "
        f"sold {units.get('sold')}, available {units.get('available')}; buyers' orders hold "
        f"{held} units, {same} the 201s; oversold: {max(0, held - args.seats)}"
    )


async def run(args: argparse.Namespace) -> int:
    info = running_instance(args.data_dir.absolute())
    if info is None:
        print(f"ticketing up is not running with {args.data_dir}", file=sys.stderr)
        return 2
    stack = await Stack.connect(info, args.data_dir.absolute())
    print(f"stack: {stack.url} (PID {info.pid}), processes: {', '.join(sorted(stack.pids))}")
    for process, names in SETTINGS.items():
        print(f"  {process}: " + ", ".join(f"{n}={stack.setting(process, n)}" for n in names))
    print(f"machine: {os.cpu_count()} CPUs, load average {load()}")
    client = gateway_client(stack.url, max(args.concurrency, args.sale_connections))
    try:
        started = time.perf_counter()
        people = await sign_up(
            client, 2 + max(args.buyers, args.concurrency), args.signup_concurrency
        )
        print(f"sign-ups (not measured): {len(people)} in {time.perf_counter() - started:.1f} s")
        seller, sale_seller, buyers = people[0], people[1], people[2:]
        figures = Figures()
        columns = [await baseline(stack, client, args.baseline, args.concurrency)]
        ids, listing = await replication(stack, client, seller, args.tickets, args, figures)
        columns.append(listing)
        columns += await purchases(
            stack, client, buyers[: args.concurrency], seller, ids, args, figures
        )
        sale = buyers[: args.buyers]
        columns.append(await flash_sale(stack, client, sale, sale_seller, args, figures))
        general = await general_admission_sale(stack, client, sale, sale_seller, args, figures)
        if general is not None:
            columns.append(general)
        print()
        print("server CPU by process (ms per request of each phase):")
        print_cpu(columns)
        print(f"load average at the end: {load()}")
        print(target_summary(figures))
    except Refused as refused:
        print(f"stopped: {refused}", file=sys.stderr)
        return 1
    finally:
        await client.close()
        await stack.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data-dir", type=Path, default=Path(".ticketing"))
    parser.add_argument("--concurrency", type=int, default=32, help="buyers at once")
    parser.add_argument("--baseline", type=int, default=2000, help="no-op requests")
    parser.add_argument("--tickets", type=int, default=2000, help="tickets listed, then bought")
    parser.add_argument("--buyers", type=int, default=1000, help="flash-sale buyers")
    parser.add_argument("--seats", type=int, default=100, help="flash-sale tickets")
    parser.add_argument("--sale-connections", type=int, default=200)
    parser.add_argument("--signup-concurrency", type=int, default=4)
    parser.add_argument("--sample", type=float, default=0.05, help="seconds between reads")
    args = parser.parse_args()
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
