"""What the end-to-end tests share: a `ticketing up` process they start and stop."""

from __future__ import annotations

import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import psutil

from ticketing_common.embedded import free_port


def up_argv(port: int, data_dir: Path, *extra: str) -> list[str]:
    ticketing = [sys.executable, "-m", "ticketing_devstack"]
    return [*ticketing, "up", "--port", str(port), "--data-dir", str(data_dir), *extra]


class Stack:
    """A `ticketing up` process and the lines it printed."""

    def __init__(
        self, data_dir: Path, port: int | None = None, *, extra_args: Sequence[str] = ()
    ) -> None:
        """Start ``ticketing up``; ``extra_args`` e.g. ``("--expiration-window", "5")``."""
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            up_argv(self.port, data_dir, *extra_args),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()
        self.children: list[psutil.Process] = []

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            self._queue.put(line)
        self._queue.put(None)

    def wait_until_up(self, timeout: float = 180) -> None:
        expected = f"Ticketing is up at {self.url}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                break
            if expected in line:
                # Captured now, while every process it started runs.
                self.children = list(psutil.Process(self.proc.pid).children(recursive=True))
                return
        raise AssertionError(f"never printed {expected!r}:\n" + "\n".join(self.lines))

    def terminate(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def stop(self) -> None:
        """Stop it if it still runs: SIGTERM (it stops its own children), then SIGKILL."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def left_running(self) -> list[int]:
        alive = []
        for child in self.children:
            try:
                if child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
                    alive.append(child.pid)
            except psutil.NoSuchProcess:
                pass
        return alive
