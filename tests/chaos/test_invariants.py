"""The invariant checker names every broken promise and the ids at fault (on recorded
states, so each rule is shown to fire without needing a crash to produce it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.chaos.invariants import INVARIANTS, Charge, OrderRow, Snapshot, check
from tests.chaos.workload import Exchange, History

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
PAST = NOW - timedelta(minutes=1)


def _history(tmp_path: Path, *paid_orders: str) -> History:
    history = History(tmp_path / "history.jsonl")
    for order_id in paid_orders:
        body = {"id": "p", "orderId": order_id, "stripeId": "pi"}
        history.add(Exchange(1.0, 1.1, "buyer0", "POST", "/api/payments", 201, body))
    history.close()
    return history


def _consistent() -> Snapshot:
    return Snapshot(
        now=NOW,
        tickets={"t1": (2, "o1"), "t2": (1, None)},
        orders={
            "o1": OrderRow("t1", "complete", PAST, 1),
            "o2": OrderRow("t2", "cancelled", PAST, 1),
        },
        replica_versions={"t1": 2, "t2": 1},
        outbox={"tickets": 0, "orders": 0, "payments": 0},
        consumers={"tickets-order-created": (0, 0)},
        charges=[
            Charge("ch_1", "o1", "pi_1", succeeded=True, refunded=False),
            Charge("ch_2", "o2", "pi_2", succeeded=True, refunded=True),
        ],
    )


def test_a_consistent_state_breaks_no_invariant(tmp_path: Path) -> None:
    assert check(_consistent(), _history(tmp_path, "o1", "o2")) == []


def test_a_paid_order_whose_ticket_is_for_sale_again_is_named(tmp_path: Path) -> None:
    snapshot = _consistent()
    snapshot.tickets["t1"] = (3, None)
    snapshot.replica_versions["t1"] = 3
    violations = check(snapshot, _history(tmp_path, "o1"))
    assert [v.invariant for v in violations] == ["tickets' orderId is the order holding it"]
    assert violations[0].ids == ("ticket t1: tickets says None, orders says o1",)


def test_a_charge_kept_for_a_cancelled_order_is_named(tmp_path: Path) -> None:
    snapshot = _consistent()
    snapshot.orders["o3"] = OrderRow("t2", "cancelled", PAST, 1)
    snapshot.charges.append(Charge("ch_3", "o3", "pi_3", succeeded=True, refunded=False))
    violations = check(snapshot, _history(tmp_path, "o1", "o3"))
    assert {v.invariant: v.ids for v in violations} == {
        INVARIANTS[4]: ("order o3 (cancelled)",),
        INVARIANTS[5]: ("charge ch_3 (order o3: cancelled)",),
    }


def test_double_sales_stale_orders_version_gaps_double_charges_and_backlogs_are_named(
    tmp_path: Path,
) -> None:
    snapshot = _consistent()
    snapshot.orders["o4"] = OrderRow("t1", "complete", PAST, 1)
    snapshot.orders["o5"] = OrderRow("t2", "awaiting:payment", PAST, 0)
    snapshot.tickets["t2"] = (1, "o5")
    snapshot.replica_versions["t2"] = 0
    snapshot.charges.append(Charge("ch_4", "o1", "pi_1", succeeded=True, refunded=False))
    snapshot.outbox["orders"] = 2
    snapshot.dead_letters = 1
    found = {v.invariant: v.ids for v in check(snapshot, _history(tmp_path))}
    assert found[INVARIANTS[0]] == ("ticket t1: o1, o4",)
    assert found[INVARIANTS[1]] == ("o5 (awaiting:payment)",)
    assert found[INVARIANTS[3]] == ("ticket t2: 1 in tickets, 0 in orders",)
    assert found[INVARIANTS[6]] == ("order o1: ch_1, ch_4",)
    assert found[INVARIANTS[7]] == ("outbox of orders: 2 rows", "1 dead letters")
