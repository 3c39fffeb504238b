"""The marketplace's promises, checked after convergence from the sources of truth.

A :class:`Snapshot` reads each service's own PostgreSQL database (the data dir's
server, found by its PID), the JetStream state (consumers, dead letters) and the
Stripe sandbox (with the Stripe SDK, as payments talks to it). :func:`check`
compares them with each other and with the recorded history; each broken promise
is a :class:`Violation` naming the ids at fault.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import asyncpg
import nats
import stripe

from tests.chaos import components
from tests.chaos.workload import History
from ticketing_common.events.contracts import OrderStatus, Subjects
from ticketing_devstack.environment import SANDBOX_SECRET_KEY
from ticketing_devstack.stack import STRIPE_SANDBOX_NAME

NAMESPACE = "ticketing"  # what `ticketing up` runs with (NATS_NAMESPACE's default)
OUTBOX_SERVICES = ("tickets", "orders", "payments")
OPEN = (OrderStatus.CREATED.value, OrderStatus.AWAITING_PAYMENT.value)
HOLDING = tuple(status.value for status in OrderStatus if status.holds_ticket)
COMPLETE = OrderStatus.COMPLETE.value
CANCELLED = OrderStatus.CANCELLED.value

INVARIANTS = (
    "at most one complete order per ticket",
    "no order left open past its window",
    "tickets' orderId is the order holding it",
    "tickets' version equals orders' replica",
    "every 201 payment is for a complete order or refunded",
    "every succeeded charge is for a complete order or refunded",
    "at most one kept charge per order",
    "outboxes drained, consumers caught up, no dead letters",
)


@dataclass(frozen=True)
class Violation:
    invariant: str
    ids: tuple[str, ...]
    detail: str

    def __str__(self) -> str:
        shown = ", ".join(self.ids[:20]) + (" …" if len(self.ids) > 20 else "")
        return f"{self.invariant}: {self.detail} [{shown}]"


@dataclass(frozen=True)
class OrderRow:
    ticket_id: str
    status: str
    expires_at: datetime
    version: int


@dataclass(frozen=True)
class Charge:
    id: str
    order_id: str | None
    intent_id: str | None
    succeeded: bool
    refunded: bool


@dataclass
class Snapshot:
    now: datetime | None = None
    tickets: dict[str, tuple[int, str | None]] = field(default_factory=dict)
    """Ticket id -> (version, orderId) in tickets."""
    orders: dict[str, OrderRow] = field(default_factory=dict)
    replica_versions: dict[str, int] = field(default_factory=dict)
    """Ticket id -> version in orders' replica of tickets."""
    payments: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Order id -> (PaymentIntent id, status) in payments."""
    outbox: dict[str, int] = field(default_factory=dict)
    consumers: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Durable name -> (pending, waiting for an ack)."""
    dead_letters: int = 0
    charges: list[Charge] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """What could not be read (a component down); a snapshot with errors proves nothing."""

    @property
    def quiescent(self) -> bool:
        """Nothing left in flight, and no order still waiting for its window to pass."""
        return (
            not self.errors
            and not any(self.outbox.values())
            and not any(p or a for p, a in self.consumers.values())
            and not any(order.status in OPEN for order in self.orders.values())
        )


async def take_snapshot(data_dir: Path) -> Snapshot:
    snapshot = Snapshot()
    for part in (_databases, _jetstream, _sandbox):
        try:
            await part(data_dir, snapshot)
        except Exception as exc:  # a part that cannot be read is reported, not fatal
            snapshot.errors.append(f"{part.__name__.strip('_')}: {exc!r}")
    return snapshot


async def _fetch(data_dir: Path, service: str, query: str) -> list[asyncpg.Record]:
    url = components.database_url(data_dir, service)
    if url is None:
        raise RuntimeError("PostgreSQL is not running")
    conn = await asyncpg.connect(url, timeout=5)
    try:
        rows: list[asyncpg.Record] = await conn.fetch(query)
        return rows
    finally:
        await conn.close()


async def _databases(data_dir: Path, snapshot: Snapshot) -> None:
    now = await _fetch(data_dir, "orders", "SELECT now() AS now")
    snapshot.now = now[0]["now"]
    for row in await _fetch(data_dir, "tickets", "SELECT id, version, order_id FROM tickets"):
        order_id = str(row["order_id"]) if row["order_id"] is not None else None
        snapshot.tickets[str(row["id"])] = (row["version"], order_id)
    orders = "SELECT id, ticket_id, status, expires_at, version FROM orders"
    for row in await _fetch(data_dir, "orders", orders):
        snapshot.orders[str(row["id"])] = OrderRow(
            str(row["ticket_id"]), row["status"], row["expires_at"], row["version"]
        )
    for row in await _fetch(data_dir, "orders", "SELECT id, version FROM tickets"):
        snapshot.replica_versions[str(row["id"])] = row["version"]
    for row in await _fetch(
        data_dir, "payments", "SELECT order_id, stripe_id, status FROM payments"
    ):
        snapshot.payments[str(row["order_id"])] = (row["stripe_id"], row["status"])
    for service in OUTBOX_SERVICES:
        rows = await _fetch(data_dir, service, "SELECT count(*) AS n FROM outbox")
        snapshot.outbox[service] = rows[0]["n"]


async def _jetstream(data_dir: Path, snapshot: Snapshot) -> None:
    url = components.nats_url(data_dir)
    if url is None:
        raise RuntimeError("NATS is not running")
    subjects = Subjects(NAMESPACE)
    client = await nats.connect(url, connect_timeout=5, max_reconnect_attempts=0)
    try:
        jsm = client.jsm()
        for consumer in await jsm.consumers_info(subjects.stream):
            name = consumer.name
            snapshot.consumers[name] = (consumer.num_pending or 0, consumer.num_ack_pending or 0)
        dead = await jsm.stream_info(subjects.dead_letter_stream)
        snapshot.dead_letters = dead.state.messages
    finally:
        await client.close()


async def _sandbox(data_dir: Path, snapshot: Snapshot) -> None:
    url = components.url_of(data_dir, STRIPE_SANDBOX_NAME)
    if url is None:
        raise RuntimeError("the Stripe sandbox is not running")
    snapshot.charges = await asyncio.to_thread(_charges, url)


def _charges(url: str) -> list[Charge]:
    client = stripe.StripeClient(SANDBOX_SECRET_KEY, base_addresses={"api": url})
    order_of_intent: dict[str, str | None] = {}
    for intent in client.v1.payment_intents.list({"limit": 100}).auto_paging_iter():
        order_id = (intent.to_dict().get("metadata") or {}).get("order_id")
        order_of_intent[intent.id] = str(order_id) if order_id is not None else None
    charges = []
    for charge in client.v1.charges.list({"limit": 100}).auto_paging_iter():
        intent_id = charge.payment_intent if isinstance(charge.payment_intent, str) else None
        charges.append(
            Charge(
                charge.id,
                order_of_intent.get(intent_id) if intent_id else None,
                intent_id,
                charge.status == "succeeded",
                bool(charge.refunded),
            )
        )
    return charges


async def converged(data_dir: Path, timeout: float, settle: float = 3.0) -> Snapshot:
    """The first snapshot quiescent twice ``settle`` s apart (so a periodic sweep had
    its turn), or the last one taken when ``timeout`` ran out."""
    deadline = time.monotonic() + timeout
    snapshot = await take_snapshot(data_dir)
    while time.monotonic() < deadline:
        if snapshot.quiescent:
            await asyncio.sleep(settle)
            again = await take_snapshot(data_dir)
            if again.quiescent:
                return again
            snapshot = again
            continue
        await asyncio.sleep(1.0)
        snapshot = await take_snapshot(data_dir)
    return snapshot


def check(snapshot: Snapshot, history: History) -> list[Violation]:
    """Every broken promise, in the order of INVARIANTS."""
    checks = (
        _sold_once,
        _none_open_past_window,
        _tickets_hold_the_holder,
        _versions_agree,
        _paid_means_ticket_or_refund,
        _charges_kept_only_for_tickets,
        _one_kept_charge_per_order,
        _drained,
    )
    found = []
    for invariant, rule in zip(INVARIANTS, checks, strict=True):
        ids, detail = rule(snapshot, history)
        if ids:
            found.append(Violation(invariant, tuple(ids), detail.format(n=len(ids))))
    return found


Rule = tuple[list[str], str]


def _status(snapshot: Snapshot, order_id: str | None) -> str:
    order = snapshot.orders.get(order_id) if order_id is not None else None
    return order.status if order is not None else "unknown to orders"


def _sold_once(snapshot: Snapshot, history: History) -> Rule:
    complete: dict[str, list[str]] = defaultdict(list)
    for order_id, order in snapshot.orders.items():
        if order.status == COMPLETE:
            complete[order.ticket_id].append(order_id)
    sold_twice = [f"ticket {t}: {', '.join(ids)}" for t, ids in complete.items() if len(ids) > 1]
    return sold_twice, "{n} tickets with several complete orders"


def _none_open_past_window(snapshot: Snapshot, history: History) -> Rule:
    now = snapshot.now
    stale = [
        f"{order_id} ({order.status})"
        for order_id, order in snapshot.orders.items()
        if order.status in OPEN and now is not None and order.expires_at < now
    ]
    return stale, "{n} orders still open past expiresAt"


def _tickets_hold_the_holder(snapshot: Snapshot, history: History) -> Rule:
    holder = {o.ticket_id: i for i, o in snapshot.orders.items() if o.status in HOLDING}
    wrong = [
        f"ticket {ticket_id}: tickets says {order_id}, orders says {holder.get(ticket_id)}"
        for ticket_id, (_, order_id) in snapshot.tickets.items()
        if order_id != holder.get(ticket_id)
    ]
    return wrong, "{n} tickets whose orderId is not the order holding them"


def _versions_agree(snapshot: Snapshot, history: History) -> Rule:
    behind = [
        f"ticket {ticket_id}: {version} in tickets, {snapshot.replica_versions.get(ticket_id)}"
        " in orders"
        for ticket_id, (version, _) in snapshot.tickets.items()
        if snapshot.replica_versions.get(ticket_id) != version
    ]
    return behind, "{n} tickets whose replica in orders has another version"


def _paid_means_ticket_or_refund(snapshot: Snapshot, history: History) -> Rule:
    refunded = {c.order_id for c in snapshot.charges if c.succeeded and c.refunded}
    paid = sorted(
        {
            str(e.body["orderId"])
            for e in history.exchanges
            if e.path == "/api/payments" and e.status == 201 and isinstance(e.body, dict)
        }
    )
    unkept = [
        f"order {order_id} ({_status(snapshot, order_id)})"
        for order_id in paid
        if not (
            _status(snapshot, order_id) == COMPLETE
            or (_status(snapshot, order_id) == CANCELLED and order_id in refunded)
        )
    ]
    return unkept, "{n} payments answered 201 whose order is neither complete nor refunded"


def _charges_kept_only_for_tickets(snapshot: Snapshot, history: History) -> Rule:
    for_nothing = [
        f"charge {c.id} (order {c.order_id}: {_status(snapshot, c.order_id)})"
        for c in snapshot.charges
        if c.succeeded and not c.refunded and _status(snapshot, c.order_id) != COMPLETE
    ]
    return for_nothing, "{n} unrefunded charges for an order that is not complete"


def _one_kept_charge_per_order(snapshot: Snapshot, history: History) -> Rule:
    kept: dict[str | None, list[str]] = defaultdict(list)
    for c in snapshot.charges:
        if c.succeeded and not c.refunded:
            kept[c.order_id].append(c.id)
    doubled = [f"order {order}: {', '.join(ids)}" for order, ids in kept.items() if len(ids) > 1]
    return doubled, "{n} orders with more than one unrefunded charge"


def _drained(snapshot: Snapshot, history: History) -> Rule:
    left = [f"outbox of {name}: {n} rows" for name, n in snapshot.outbox.items() if n]
    left += [
        f"consumer {name}: {pending} pending, {unacked} unacked"
        for name, (pending, unacked) in snapshot.consumers.items()
        if pending or unacked
    ]
    if snapshot.dead_letters:
        left.append(f"{snapshot.dead_letters} dead letters")
    left += [f"could not read {error}" for error in snapshot.errors]
    return left, "{n} things not drained"
