"""`ticketing` as a user runs it: refusals are clear and start nothing."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from ticketing_common.embedded import free_port
from ticketing_devstack.instance import InstanceLock


def _ticketing(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ticketing_devstack", *args],
        env=dict(os.environ, COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_up_refuses_to_start_while_another_instance_holds_the_data_dir(tmp_path: Path) -> None:
    with InstanceLock.acquire(tmp_path, "http://127.0.0.1:8123"):
        result = _ticketing("up", "--port", str(free_port()), "--data-dir", str(tmp_path))

    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert f"(PID {os.getpid()}) at http://127.0.0.1:8123 is already running" in output
    assert not (tmp_path / "postgres").exists()


def test_up_refuses_a_gateway_port_in_use_before_starting_anything(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _ticketing("up", "--port", str(port), "--data-dir", str(tmp_path))

    assert result.returncode == 1
    assert f"Port {port} on 127.0.0.1 is in use" in result.stdout
    assert not (tmp_path / "postgres").exists()
    assert (tmp_path / "ticketing.lock").read_text() == ""


def test_status_reports_not_running_with_exit_code_1(tmp_path: Path) -> None:
    result = _ticketing("status", "--data-dir", str(tmp_path))

    assert result.returncode == 1
    assert "not running" in result.stdout


def test_status_names_the_running_instance(tmp_path: Path) -> None:
    with InstanceLock.acquire(tmp_path, "http://127.0.0.1:8123"):
        result = _ticketing("status", "--data-dir", str(tmp_path))

    assert result.returncode == 0
    assert f"running at http://127.0.0.1:8123 (PID {os.getpid()})" in result.stdout


def test_help_names_every_command_and_the_up_options() -> None:
    top = _ticketing("--help")
    up = _ticketing("up", "--help")

    assert top.returncode == 0
    assert "Usage: ticketing" in top.stdout
    for command in ("up", "down", "status", "logs", "routes", "traces"):
        assert command in top.stdout
    for option in (
        "--port",
        "--data-dir",
        "--expiration-window",
        "EXPIRATION_WINDOW_SECONDS",
        "--traces",
    ):
        assert option in up.stdout
