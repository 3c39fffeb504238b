"""Children's output is shown behind a `name |` prefix; stopping leaves nothing behind."""

from __future__ import annotations

import io
import json
import os
import sys
import time
from pathlib import Path

import psutil
from rich.console import Console

from ticketing_devstack.processes import LogPrinter, Supervisor, format_log_line


def _printer(raw: bool = False, verbose: bool = True) -> tuple[LogPrinter, io.StringIO]:
    out = io.StringIO()
    console = Console(file=out, width=200, color_system=None)
    return LogPrinter(console, prefix_width=8, raw=raw, verbose=verbose), out


def _wait_for_lines(supervisor: Supervisor, name: str, count: int) -> list[str]:
    deadline = time.monotonic() + 10
    while len(lines := supervisor.settle(name)) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return lines


def test_json_log_line_is_shown_as_level_message_and_extra_fields() -> None:
    line = json.dumps(
        {
            "time": "2026-01-01T00:00:00Z",
            "level": "info",
            "service": "auth",
            "logger": "ticketing.auth",
            "message": "signed up",
            "request_id": "r1",
            "status": 201,
        }
    )

    assert format_log_line(line).plain == (
        "INFO  signed up logger=ticketing.auth request_id=r1 status=201"
    )


def test_a_line_that_is_not_a_json_object_is_shown_unchanged() -> None:
    for line in ("plain text {", "[1, 2]", "{not json"):
        assert format_log_line(line).plain == line


def test_every_line_of_a_traceback_keeps_the_process_prefix() -> None:
    printer, out = _printer()
    line = json.dumps({"level": "error", "message": "boom", "exc": "Traceback\n  File x\nError"})

    printer.line("auth", line)

    assert out.getvalue().splitlines() == [
        "auth     | ERROR boom",
        "auth     | Traceback",
        "auth     |   File x",
        "auth     | Error",
    ]


def test_raw_mode_prints_json_lines_as_they_are() -> None:
    printer, out = _printer(raw=True)

    printer.line("auth", '{"level": "info", "message": "hi"}')

    assert out.getvalue() == 'auth     | {"level": "info", "message": "hi"}\n'


def test_child_output_goes_to_its_log_file_is_streamed_with_its_name_and_kept_as_tail(
    tmp_path: Path,
) -> None:
    printer, out = _printer()
    supervisor = Supervisor(printer, tmp_path)

    child = supervisor.spawn(
        "tickets",
        [sys.executable, "-c", "import sys; print('hello'); print('oops', file=sys.stderr)"],
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    child.wait(10)
    lines = _wait_for_lines(supervisor, "tickets", 2)
    supervisor.close()

    assert out.getvalue().splitlines() == ["tickets  | hello", "tickets  | oops"]
    assert lines == ["hello", "oops"]
    assert (tmp_path / "tickets.log").read_text() == "hello\noops\n"


def test_a_restarted_process_appends_to_the_same_log(tmp_path: Path) -> None:
    printer, _ = _printer()
    supervisor = Supervisor(printer, tmp_path)

    for word in ("first", "second"):
        supervisor.spawn("Stripe sandbox", ["echo", word], env=os.environ).wait(10)
    lines = _wait_for_lines(supervisor, "Stripe sandbox", 2)
    supervisor.close()

    assert lines == ["first", "second"]
    assert (tmp_path / "stripe-sandbox.log").read_text() == "first\nsecond\n"


def test_without_verbose_only_warnings_and_errors_of_a_child_are_shown(tmp_path: Path) -> None:
    printer, out = _printer(verbose=False)
    supervisor = Supervisor(printer, tmp_path)
    lines = [
        "a banner",
        json.dumps({"level": "info", "message": "started"}),
        json.dumps({"level": "warning", "message": "retrying"}),
        json.dumps({"level": "error", "message": "failed"}),
    ]

    script = "import sys; sys.stdout.write(sys.argv[1])"
    supervisor.spawn(
        "orders", [sys.executable, "-c", script, "\n".join(lines) + "\n"], env=os.environ
    )
    _wait_for_lines(supervisor, "orders", 4)
    supervisor.close()

    assert out.getvalue().splitlines() == [
        "orders   | WARNING retrying",
        "orders   | ERROR failed",
    ]


def test_lines_appended_to_a_followed_log_file_are_streamed(tmp_path: Path) -> None:
    printer, out = _printer()
    supervisor = Supervisor(printer, tmp_path)
    log = tmp_path / "postgres.log"
    log.write_text("written before we started following\n")

    follower = supervisor.follow("postgres")
    with log.open("a") as file:
        file.write("ready to accept connections\n")
    time.sleep(0.5)
    supervisor.close()

    assert out.getvalue().splitlines() == ["postgres | ready to accept connections"]
    assert follower.tail.snapshot() == ["ready to accept connections"]


def test_stop_kills_a_child_that_ignores_sigterm_and_the_process_it_started(
    tmp_path: Path,
) -> None:
    printer, out = _printer()
    supervisor = Supervisor(printer, tmp_path)
    stubborn = (
        "import signal, subprocess, sys, time\n"
        "grandchild = subprocess.Popen(['sleep', '60'])\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print(grandchild.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    child = supervisor.spawn("orders", [sys.executable, "-c", stubborn], env=os.environ)
    grandchild = psutil.Process(int(_wait_for_lines(supervisor, "orders", 1)[0]))

    supervisor.stop([child], timeout=1)

    assert child.exit_code() is not None
    assert not grandchild.is_running() or grandchild.status() == psutil.STATUS_ZOMBIE
    assert "orders did not stop in 1s; killing it" in out.getvalue()
