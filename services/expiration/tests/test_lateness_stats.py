"""Lateness statistics: nearest-rank percentiles over a bounded window of recent firings."""

from __future__ import annotations

from ticketing_expiration.service import LatenessStats, percentile


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]

    assert percentile(values, 50) == 50
    assert percentile(values, 90) == 90
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([], 50) is None


def test_stats_cover_only_the_last_window_firings() -> None:
    stats = LatenessStats(window=3)
    for lateness in (1000.0, 5.0, 6.0, 7.0):
        stats.record(lateness)

    summary = stats.summary()

    assert summary.count == 3
    assert summary.max == 7.0  # the 1000 ms firing fell out of the window
    assert summary.p50 == 6.0
