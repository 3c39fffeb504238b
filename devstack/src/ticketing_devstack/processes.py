"""Child processes and their logs: start, stream with a coloured prefix, stop by PID.

Owns everything ``ticketing up`` knows about a process it started: the
``Popen``, a thread that streams its output as ``name | line``, the last lines
of that output (for error reports), and stopping it (SIGTERM, then SIGKILL
after a grace period, then whatever it had started and left behind). Children
run in their own session so a Ctrl-C in the terminal reaches only
``ticketing``, which then stops them in order.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

import psutil
from rich.console import Console, RenderableType
from rich.text import Text

PALETTE = (
    "cyan",
    "magenta",
    "green",
    "yellow",
    "blue",
    "bright_cyan",
    "bright_magenta",
    "bright_green",
    "bright_yellow",
    "bright_blue",
)
LEVEL_STYLES = {
    "debug": "dim",
    "info": "",
    "warn": "yellow",
    "warning": "yellow",
    "error": "bold red",
    "critical": "bold red",
    "fatal": "bold red",
    "panic": "bold red",
}
# Keys a JSON log line carries that the prefix or the layout already shows.
# uvicorn's color_message repeats the message with terminal escapes.
_HIDDEN_KEYS = {
    "time",
    "ts",
    "timestamp",
    "asctime",
    "service",
    "level",
    "levelname",
    "color_message",
}
_MESSAGE_KEYS = ("message", "msg", "event")
_MULTILINE_KEYS = ("exc", "exc_info", "stack", "traceback")


def format_log_line(line: str) -> Text:
    """A JSON log line as ``level message key=value ...``; any other line unchanged.

    Tracebacks (``exc``) follow on their own lines so they stay readable.
    """
    stripped = line.strip()
    if not stripped.startswith("{"):
        return Text(line)
    try:
        record = json.loads(stripped)
    except ValueError:
        return Text(line)
    if not isinstance(record, dict):
        return Text(line)
    level = str(record.get("level", record.get("levelname", ""))).lower()
    message = next((str(record[key]) for key in _MESSAGE_KEYS if key in record), "")
    style = LEVEL_STYLES.get(level, "")
    text = Text()
    if level:
        text.append(f"{level.upper():<5} ", style=style or "dim")
    text.append(message, style=style)
    shown = {*_HIDDEN_KEYS, *_MESSAGE_KEYS, *_MULTILINE_KEYS}
    for key, value in record.items():
        if key in shown:
            continue
        rendered = value if isinstance(value, str) else json.dumps(value)
        text.append(f" {key}=", style="dim")
        text.append(str(rendered))
    for key in _MULTILINE_KEYS:
        if record.get(key):
            text.append("\n" + str(record[key]).rstrip(), style="red")
    return text


class LogPrinter:
    """Prints children's lines behind a coloured, aligned ``name |`` prefix, and our own
    messages, from any thread."""

    def __init__(self, console: Console, *, prefix_width: int = 10, raw: bool = False) -> None:
        self.console = console
        self.prefix_width = prefix_width
        self.raw = raw
        self._styles: dict[str, str] = {}
        self._lock = threading.Lock()

    def style_of(self, name: str) -> str:
        with self._lock:
            if name not in self._styles:
                self._styles[name] = PALETTE[len(self._styles) % len(PALETTE)]
            return self._styles[name]

    def line(self, name: str, line: str) -> None:
        body = Text(line) if self.raw else format_log_line(line)
        prefix = Text(f"{name:<{self.prefix_width}} | ", style=self.style_of(name))
        # A continuation line (a traceback) keeps the prefix so the column stays readable.
        rendered = Text("\n").join(prefix + part for part in body.split("\n"))
        self._print(rendered)

    def say(self, message: RenderableType, style: str = "bold") -> None:
        self._print(Text(message, style=style) if isinstance(message, str) else message)

    def error(self, message: str, tail: Sequence[str] = ()) -> None:
        self._print(Text(message, style="bold red"))
        if tail:
            self._print(Text(f"Last {len(tail)} lines of its output:", style="red"))
            for line in tail:
                self._print(Text("  " + line, style="dim"))

    def _print(self, text: RenderableType) -> None:
        with self._lock:
            # soft_wrap: log lines are never re-wrapped (or cut) to the terminal width.
            self.console.print(text, soft_wrap=True, highlight=False)
            with contextlib.suppress(Exception):
                self.console.file.flush()


@dataclass
class OutputTail:
    """The last lines a process wrote."""

    lines: deque[str] = field(default_factory=lambda: deque(maxlen=40))

    def add(self, line: str) -> None:
        self.lines.append(line)

    def snapshot(self) -> list[str]:
        return list(self.lines)


@dataclass
class Managed:
    """A process we started."""

    name: str
    popen: subprocess.Popen[bytes]
    tail: OutputTail
    reader: threading.Thread

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()


class Supervisor:
    """Starts processes with streamed output and stops exactly those processes."""

    def __init__(self, printer: LogPrinter) -> None:
        self.printer = printer
        self.processes: list[Managed] = []
        self._followers: list[threading.Thread] = []
        self._closing = threading.Event()

    def spawn(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path | None = None,
    ) -> Managed:
        popen = subprocess.Popen(  # noqa: S603 - argv is built by us, never from input
            list(argv),
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        tail = OutputTail()
        assert popen.stdout is not None
        reader = threading.Thread(
            target=self._pump, args=(name, popen.stdout, tail), name=f"log-{name}", daemon=True
        )
        managed = Managed(name, popen, tail, reader)
        self.processes.append(managed)
        reader.start()
        return managed

    def follow(self, name: str, path: Path) -> OutputTail:
        """Stream the lines appended to ``path`` from now on (servers that log to a file)."""
        tail = OutputTail()
        start = path.stat().st_size if path.exists() else 0
        thread = threading.Thread(
            target=self._follow, args=(name, path, start, tail), name=f"log-{name}", daemon=True
        )
        self._followers.append(thread)
        thread.start()
        return tail

    def _pump(self, name: str, stream: IO[bytes], tail: OutputTail) -> None:
        with stream:
            for raw in iter(stream.readline, b""):
                self._emit(name, raw, tail)

    def _follow(self, name: str, path: Path, offset: int, tail: OutputTail) -> None:
        pending = b""
        while True:
            closing = self._closing.is_set()  # read before the last pass so nothing is lost
            with contextlib.suppress(OSError), path.open("rb") as file:
                file.seek(offset)
                data = file.read()
                offset += len(data)
                pending += data
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                self._emit(name, raw, tail)
            if closing:
                return
            self._closing.wait(0.2)

    def _emit(self, name: str, raw: bytes, tail: OutputTail) -> None:
        line = raw.decode("utf-8", errors="replace").rstrip()
        if line:
            tail.add(line)
            self.printer.line(name, line)

    def stop(self, processes: Sequence[Managed], timeout: float = 10) -> None:
        """SIGTERM them all, SIGKILL whatever still runs after ``timeout``, then stop any
        process they had started that outlived them. Waits for the last output lines."""
        running = [p for p in processes if p.popen.poll() is None]
        descendants = [child for p in running for child in _descendants(p.pid)]
        for process in running:
            with contextlib.suppress(ProcessLookupError):
                process.popen.terminate()
        deadline = time.monotonic() + timeout
        for process in running:
            try:
                process.popen.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.printer.say(f"{process.name} did not stop in {timeout:.0f}s; killing it")
                process.popen.kill()
                process.popen.wait()
        _stop_leftover(descendants)
        for process in processes:
            process.reader.join(timeout=2)

    def close(self) -> None:
        """Stop following log files (after a last read)."""
        self._closing.set()
        for thread in self._followers:
            thread.join(timeout=2)


class ProcessHandle(Protocol):
    """The part of ``psutil.Process`` used here (psutil ships no type information)."""

    def create_time(self) -> float: ...
    def status(self) -> str: ...
    def is_running(self) -> bool: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...


def _descendants(pid: int) -> list[ProcessHandle]:
    try:
        children: list[ProcessHandle] = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []
    return children


def _stop_leftover(processes: list[ProcessHandle], timeout: float = 5) -> None:
    """SIGTERM, then SIGKILL, the given descendants still running. psutil checks each PID
    still names the process it captured, so a reused PID is never signalled."""
    alive = [p for p in processes if _running(p)]
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    # Polled rather than psutil.wait_procs: an orphan becomes a zombie of PID 1, which
    # some containers never reap, and a zombie has stopped for good.
    deadline = time.monotonic() + timeout
    while (alive := [p for p in alive if _running(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()


def _running(proc: ProcessHandle) -> bool:
    with contextlib.suppress(psutil.Error):
        return bool(proc.is_running()) and proc.status() != psutil.STATUS_ZOMBIE
    return False
