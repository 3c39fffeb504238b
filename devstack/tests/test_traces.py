"""`ticketing up --traces` gives each service a traces file; `ticketing traces` prints
what they hold as one tree per trace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ticketing_common.settings import EventServiceSettings
from ticketing_common.spec import ServiceSpec
from ticketing_common.testing.traces import write_sample_traces
from ticketing_devstack.environment import (
    TRACES_DIR_VARIABLE,
    Addresses,
    Shared,
    service_environments,
)

ORDERS = ServiceSpec(
    name="orders", package="ticketing_orders", title="o", settings=EventServiceSettings
)
TICKETS = ServiceSpec(
    name="tickets", package="ticketing_tickets", title="t", settings=EventServiceSettings
)


def _ticketing(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ticketing_devstack", *args],
        env=dict(os.environ, COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_with_a_traces_dir_each_service_writes_a_file_of_its_own(tmp_path: Path) -> None:
    addresses = Addresses(gateway_url="http://127.0.0.1:8000", ports={"orders": 1, "tickets": 2})
    shared = Shared(jwt_key="k" * 32)

    traced = service_environments(
        [ORDERS, TICKETS], {TRACES_DIR_VARIABLE: str(tmp_path)}, addresses, shared
    )
    untraced = service_environments([ORDERS, TICKETS], {}, addresses, shared)

    assert traced["orders"]["TRACES_FILE"] == str(tmp_path / "orders.jsonl")
    assert traced["tickets"]["TRACES_FILE"] == str(tmp_path / "tickets.jsonl")
    assert "TRACES_FILE" not in untraced["orders"]


def test_traces_prints_each_trace_as_a_tree(tmp_path: Path) -> None:
    directory = tmp_path / "traces"

    write_sample_traces(directory)

    everything = _ticketing("traces", "--data-dir", str(tmp_path))
    crossing = _ticketing("traces", "--data-dir", str(tmp_path), "--min-services", "2")

    assert everything.returncode == 0, everything.stderr
    assert everything.stdout.count("\ntrace ") + everything.stdout.startswith("trace ") == 2
    lines = [line.split() for line in crossing.stdout.splitlines() if line.strip()]
    assert lines[0][0] == "trace"
    assert [line[:3] for line in lines[1:]] == [
        ["orders", "POST", "/api/orders"],
        ["orders", "publish", "order:created"],
        ["tickets", "process", "order:created"],
    ]
    assert all(line[-1] == "ms" for line in lines[1:])


def test_traces_says_how_to_record_some_when_there_are_none(tmp_path: Path) -> None:
    result = _ticketing("traces", "--data-dir", str(tmp_path))

    assert result.returncode == 1
    assert "ticketing up --traces" in result.stdout
