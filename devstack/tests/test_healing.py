"""Restart with back-off and crash loops, with real (short-lived) processes."""

from __future__ import annotations

import io
import os
import sys
import time
from functools import partial
from pathlib import Path

import pytest
from rich.console import Console

from ticketing_common.embedded import free_port, listening
from ticketing_devstack.healing import (
    FAILED,
    READY,
    CrashLoopError,
    Healer,
    RestartPolicy,
    Role,
    Unit,
)
from ticketing_devstack.processes import LogPrinter, Supervisor

FAST = RestartPolicy(first_delay=0.05, max_delay=0.2, crash_loop_crashes=4)


def _printer() -> tuple[LogPrinter, io.StringIO]:
    out = io.StringIO()
    return LogPrinter(Console(file=out, width=200, color_system=None), verbose=False), out


def test_back_off_doubles_from_half_a_second_up_to_ten() -> None:
    delays = [RestartPolicy().delay(crashes) for crashes in range(1, 9)]

    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]


def _heal_until(healer: Healer, done: float) -> None:
    deadline = time.monotonic() + done
    while time.monotonic() < deadline:
        healer.tick()
        time.sleep(0.02)


def test_a_process_that_keeps_exiting_is_restarted_then_reported_as_a_crash_loop(
    tmp_path: Path,
) -> None:
    printer, out = _printer()
    supervisor = Supervisor(printer, tmp_path)
    script = "print('cannot start: no config'); raise SystemExit(2)"
    unit = _unit("orders", supervisor, [sys.executable, "-c", script], free_port())
    unit.launch()
    healer = Healer([unit], printer, ready_timeout=10, on_change=lambda: None, policy=FAST)

    with pytest.raises(CrashLoopError) as loop:
        _heal_until(healer, 60)
    supervisor.close()

    lines = out.getvalue().splitlines()
    assert lines[:3] == [
        "orders exited with code 2; restarting in 0.1 s (restart 1)",
        "orders exited with code 2; restarting in 0.1 s (restart 2)",
        "orders exited with code 2; restarting in 0.2 s (restart 3)",
    ]
    assert str(loop.value) == (
        "orders crashed 4 times in a row without getting ready; stopping everything."
    )
    assert "cannot start: no config" in loop.value.tail
    assert unit.state == FAILED


def _unit(name: str, supervisor: Supervisor, argv: list[str], port: int) -> Unit:
    """A unit ready once its port accepts connections."""
    process = supervisor.child(name, argv, env=os.environ, probe=partial(listening, port))
    return Unit(process, Role.SERVICE, supervisor.follow(name), f"port {port}")


def _listening_unit(name: str, supervisor: Supervisor) -> Unit:
    """A unit whose process listens on its port (ready) until it is killed."""
    port = free_port()
    serve = (
        "import http.server as h; "
        f"h.HTTPServer(('127.0.0.1', {port}), h.BaseHTTPRequestHandler).serve_forever()"
    )
    return _unit(name, supervisor, [sys.executable, "-c", serve], port)


def test_a_restarted_process_is_ready_again_once_it_listens(tmp_path: Path) -> None:
    printer, out = _printer()
    supervisor = Supervisor(printer, tmp_path)
    unit = _listening_unit("gateway", supervisor)
    unit.launch()
    healer = Healer([unit], printer, ready_timeout=30, on_change=lambda: None, policy=FAST)
    first = unit.pid

    unit.kill()
    deadline = time.monotonic() + 30
    while "gateway is ready again" not in out.getvalue() and time.monotonic() < deadline:
        healer.tick()
        time.sleep(0.02)
    supervisor.stop([unit.process])
    supervisor.close()

    assert out.getvalue().splitlines() == [
        "gateway exited with code -9; restarting in 0.1 s (restart 1)",
        f"gateway is ready again (PID {unit.pid}).",
    ]
    assert unit.pid != first
    assert unit.state == READY
    assert unit.restarts == 1


def test_a_process_killed_each_time_after_it_got_ready_is_healed_not_a_crash_loop(
    tmp_path: Path,
) -> None:
    """Killed more often than the crash-loop limit, but ready again every time: a fault
    (or the OOM killer) keeps hitting a healthy service, and the stack keeps it up."""
    printer, out = _printer()
    supervisor = Supervisor(printer, tmp_path)
    unit = _listening_unit("payments", supervisor)
    unit.launch()
    healer = Healer([unit], printer, ready_timeout=30, on_change=lambda: None, policy=FAST)
    kills = FAST.crash_loop_crashes + 2

    for kill in range(1, kills + 1):
        unit.kill()
        deadline = time.monotonic() + 30
        while out.getvalue().count("is ready again") < kill and time.monotonic() < deadline:
            healer.tick()
            time.sleep(0.02)
    supervisor.stop([unit.process])
    supervisor.close()

    assert out.getvalue().count("payments is ready again") == kills
    assert unit.restarts == kills
    assert unit.state == READY
