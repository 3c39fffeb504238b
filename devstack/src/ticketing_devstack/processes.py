"""Child processes and their logs: start, keep each one's log, stop by PID.

Every process ``ticketing up`` starts is a ``ChildProcess``
(``ticketing_common.embedded``: its own session, dies with us) whose output is
appended to ``<data-dir>/logs/<name>.log`` across restarts. Here: one thread
that follows every log file (showing lines as ``name | line`` when verbose,
warnings and errors always), the last lines (for error reports), and stopping
a set of children (their stop signal, then SIGKILL after a grace period, then
whatever they had started and left behind).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import psutil
from rich.console import Console, RenderableType
from rich.text import Text

from ticketing_common.embedded import ChildProcess, Probe, always_ready

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
# Levels worth a line on the terminal even when the logs are not streamed.
_NOTABLE_LEVELS = {"warn", "warning", "error", "critical", "fatal", "panic"}
LOG_DIR = "logs"


def log_file_name(name: str) -> str:
    """``Stripe sandbox`` → ``stripe-sandbox.log``."""
    return name.lower().replace(" ", "-") + ".log"


def _json_record(line: str) -> dict[str, object] | None:
    stripped = line.strip()
    if not stripped.startswith("{"):
        return None
    try:
        record = json.loads(stripped)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


# How our services' JSON lines (``ticketing_common.logs``) start their level: most
# lines are info, and are told apart without parsing them. "level" is the second
# key, after the time, so its first occurrence is the line's own.
_LEVEL_MARK = '"level": "'
_QUIET_LEVELS = ("info", "debug")


def is_notable(line: str) -> bool:
    """A JSON log line at warning level or above."""
    at = line.find(_LEVEL_MARK)
    if at >= 0 and line.startswith(_QUIET_LEVELS, at + len(_LEVEL_MARK)):
        return False
    record = _json_record(line)
    if record is None:
        return False
    return str(record.get("level", record.get("levelname", ""))).lower() in _NOTABLE_LEVELS


def format_log_line(line: str, *, traceback: bool = True) -> Text:
    """A JSON log line as ``level message key=value ...``; any other line unchanged.

    Tracebacks (``exc``) follow on their own lines so they stay readable (or are left
    out, without ``traceback``).
    """
    record = _json_record(line)
    if record is None:
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
    for key in _MULTILINE_KEYS if traceback else ():
        if record.get(key):
            text.append("\n" + str(record[key]).rstrip(), style="red")
    return text


class LogPrinter:
    """Prints children's lines behind a coloured, aligned ``name |`` prefix, and our own
    messages, from any thread (never from a signal handler: the lock is not reentrant).

    Not ``verbose``: a child's line is shown only when it is a warning or an error, on
    one line (no traceback), and not again for ``REPEAT_SECONDS`` (a server restarting
    makes every service report the same error for a while); ``detail`` messages not at
    all. The full logs are in the data directory."""

    REPEAT_SECONDS = 30.0

    def __init__(
        self,
        console: Console,
        *,
        prefix_width: int = 10,
        raw: bool = False,
        verbose: bool = True,
        show_names: bool = True,
    ) -> None:
        self.console = console
        self.prefix_width = prefix_width
        self.raw = raw
        self.verbose = verbose
        self.show_names = show_names
        self._shown: dict[tuple[str, str], float] = {}
        self._styles: dict[str, str] = {}
        self._lock = threading.Lock()

    def style_of(self, name: str) -> str:
        with self._lock:
            if name not in self._styles:
                self._styles[name] = PALETTE[len(self._styles) % len(PALETTE)]
            return self._styles[name]

    def line(self, name: str, line: str) -> None:
        if not self.verbose:
            if not is_notable(line) or self._repeated(name, line):
                return
            body = format_log_line(line, traceback=False)
        else:
            body = Text(line) if self.raw else format_log_line(line)
        if not self.show_names:
            self._print(body)
            return
        prefix = Text(f"{name:<{self.prefix_width}} | ", style=self.style_of(name))
        # A continuation line (a traceback) keeps the prefix so the column stays readable.
        rendered = Text("\n").join(prefix + part for part in body.split("\n"))
        self._print(rendered)

    def _repeated(self, name: str, line: str) -> bool:
        """True when ``name`` said the same message less than ``REPEAT_SECONDS`` ago."""
        record = _json_record(line) or {}
        message = next((str(record[key]) for key in _MESSAGE_KEYS if key in record), line)
        now = time.monotonic()
        with self._lock:
            last = self._shown.get((name, message))
            if last is not None and now - last < self.REPEAT_SECONDS:
                return True
            self._shown[(name, message)] = now
        return False

    def say(self, message: RenderableType, style: str = "bold") -> None:
        self._print(Text(message, style=style) if isinstance(message, str) else message)

    def detail(self, message: RenderableType) -> None:
        """A message shown only when verbose."""
        if self.verbose:
            self.say(message, "dim")

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


class LogFollower:
    """Reads the lines appended to one log file: into a tail, and to the printer."""

    def __init__(self, name: str, path: Path, printer: LogPrinter) -> None:
        self.name = name
        self.path = path
        self.printer = printer
        self.tail = OutputTail()
        self._offset = path.stat().st_size if path.exists() else 0
        self._pending = b""
        self._lock = threading.Lock()

    def pump(self) -> None:
        """Read what was appended since the last call (from the follower thread, or
        from the main thread before it reports a process's last lines)."""
        with self._lock:
            try:
                with self.path.open("rb") as file:
                    if os.fstat(file.fileno()).st_size < self._offset:
                        self._offset = 0  # the file was truncated or replaced
                    file.seek(self._offset)
                    data = file.read()
            except OSError:
                return
            self._offset += len(data)
            *lines, self._pending = (self._pending + data).split(b"\n")
            for raw in lines:
                line = raw.decode("utf-8", errors="replace").rstrip()
                if line:
                    self.tail.add(line)
                    self.printer.line(self.name, line)


class Supervisor:
    """Makes the children's processes log to files in ``log_dir``, follows those files,
    and stops exactly the processes it is given."""

    def __init__(self, printer: LogPrinter, log_dir: Path) -> None:
        self.printer = printer
        self.log_dir = log_dir
        self._followers: dict[str, LogFollower] = {}
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    def log_path(self, name: str) -> Path:
        return self.log_dir / log_file_name(name)

    def child(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        probe: Probe = always_ready,
    ) -> ChildProcess:
        """A process (not started) whose output is appended to ``name``'s log, which is
        followed from now on. Processes of the same name (a restart, a service's
        migrations) share the log and the tail."""
        self.follow(name)
        return ChildProcess(name, argv, self.log_path(name), env=env, probe=probe)

    def spawn(
        self, name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> ChildProcess:
        """``child``, started: a process that is run once, not kept running."""
        process = self.child(name, argv, env=env)
        process.start()
        return process

    def follow(self, name: str) -> LogFollower:
        """Follow the lines appended to ``name``'s log from now on."""
        if name not in self._followers:
            path = self.log_path(name)
            path.parent.mkdir(parents=True, exist_ok=True)
            self._followers[name] = LogFollower(name, path, self.printer)
        if self._thread is None:
            self._thread = threading.Thread(target=self._follow, name="logs", daemon=True)
            self._thread.start()
        return self._followers[name]

    def settle(self, name: str) -> list[str]:
        """The last lines of ``name``'s log, read up to now."""
        follower = self._followers.get(name)
        if follower is None:
            return []
        follower.pump()
        return follower.tail.snapshot()

    def _follow(self) -> None:
        while True:
            closing = self._closing.is_set()  # read before the last pass so nothing is lost
            for follower in list(self._followers.values()):
                follower.pump()
            if closing:
                return
            self._closing.wait(0.2)

    def stop(self, processes: Sequence[ChildProcess], timeout: float = 10) -> None:
        """Ask them all to stop, SIGKILL whatever still runs after ``timeout``, then stop
        any process they had started that outlived them. Every wait is bounded."""
        running = [p for p in processes if p.pid is not None and p.exit_code() is None]
        descendants = [child for p in running if p.pid for child in _descendants(p.pid)]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + timeout
        for process in running:
            if not process.wait(deadline - time.monotonic()):
                self.printer.say(f"{process.name} did not stop in {timeout:.0f}s; killing it")
                process.kill()
        _stop_leftover(descendants)

    def close(self) -> None:
        """Stop following log files (after a last read)."""
        self._closing.set()
        if self._thread is not None:
            self._thread.join(timeout=2)


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
