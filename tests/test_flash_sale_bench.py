"""The flash-sale benchmark's own arithmetic (``bench/flash_sale.py``): reading
``/proc/<pid>/stat``, CPU summed per process tree, and the lag of each event read
from an in-order consumer's applied count. No stack needed."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # bench/ is scripts, not an installed package

from bench.flash_sale import (  # noqa: E402
    Figures,
    ProcStat,
    is_general_admission_listing,
    parse_stat,
    reach_lags,
    relative_cpu,
    target_summary,
    ticks_by_group,
)


def test_a_stat_line_is_read_past_a_command_name_with_spaces_and_parentheses() -> None:
    line = "4242 (uv (w) x) S 4200 4242 4242 0 -1 4194560 100 0 0 0 150 25 7 3 20 0 4 0 1000"
    assert parse_stat(line) == ProcStat(pid=4242, ppid=4200, ticks=150 + 25 + 7 + 3)
    own = parse_stat(Path("/proc/self/stat").read_text())
    assert (own.pid, own.ppid) == (os.getpid(), os.getppid())


def test_cpu_is_summed_per_started_process_with_its_descendants() -> None:
    stats = [
        ProcStat(1, 0, 1000),  # init: not ours
        ProcStat(10, 1, 5),  # ticketing up
        ProcStat(20, 10, 100),  # postgres, with two backends
        ProcStat(21, 20, 7),
        ProcStat(22, 21, 3),
        ProcStat(30, 10, 40),  # orders
        ProcStat(40, 10, 2),  # a migration: not a recorded child, so ticketing up's
        ProcStat(99, 1, 500),  # someone else's
    ]
    roots = {10: "ticketing up", 20: "postgres", 30: "orders"}
    assert ticks_by_group(stats, roots) == {"ticketing up": 7, "postgres": 110, "orders": 40}


def test_each_event_lags_until_the_in_order_count_covers_it() -> None:
    listed = [1.3, 1.0, 1.2, 1.1]  # as the 201s came back, in any order
    samples = [(1.05, 0), (1.15, 1), (1.5, 3), (2.0, 4)]
    assert reach_lags(listed, samples) == pytest.approx([0.15, 0.4, 0.3, 0.7])
    # Applied before its 201 came back: no negative lag. Never applied: left out.
    assert reach_lags([1.0, 1.1], [(0.9, 1)]) == [0.0]


def test_only_a_created_listing_with_units_is_general_admission() -> None:
    units = {"total": 100, "available": 100, "held": 0, "sold": 0}
    assert is_general_admission_listing(201, {"id": "t", "units": units})
    # A stack without general admission refuses the field, or lists one seat.
    assert not is_general_admission_listing(400, {"errors": [{"message": "Invalid"}]})
    assert not is_general_admission_listing(201, {"id": "t", "price": "40.00"})


def test_the_summary_says_which_target_was_met_and_which_was_not_measured() -> None:
    figures = Figures(
        cpu_per_purchase_ms=5.5,
        purchases_per_second=120.0,
        replication_p99=1.2,
        sold_out_per_seat=1.5,
    )
    line = target_summary(figures)
    assert "CPU/purchase <= 6 ms: 5.50 ms met" in line
    assert "purchases/s >= 266: 120.0 NOT met" in line
    assert "sold out < 2 s (per-seat): 1.50 s met" in line
    assert "sold out < 2 s (general admission): - (not measured)" in line
    assert "replication p99 <= 1 s: 1200 ms NOT met" in line


def test_each_phase_is_also_given_in_no_op_requests_of_the_same_run() -> None:
    assert relative_cpu([1.25, 16.25, 5.0]) == ["1.0x", "13.0x", "4.0x"]
    # No baseline measured: no ratio rather than a division by zero.
    assert relative_cpu([0.0, 3.0]) == ["-", "-"]
    assert relative_cpu([]) == []
