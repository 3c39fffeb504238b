"""One ``ticketing up`` per data directory: the lock file and what it records.

``<data-dir>/ticketing.lock`` is held with ``flock`` for the life of the run, so
the kernel releases it when the process dies however it dies: a file left by a
killed run never blocks the next one. The file holds JSON naming the running
instance (PID, URL) and the processes it started (PID and start time), which
lets a second instance say who is running and lets the next run stop what a
killed run left behind, by PID, without touching anyone else's process.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from ticketing_devstack.processes import ProcessHandle

LOCK_FILE = "ticketing.lock"


@dataclass(frozen=True)
class ChildRecord:
    """A process we started; the start time tells it apart from a later one reusing the PID.

    ``state`` is what ``ticketing up`` last knew of it (``starting``, ``ready``,
    ``restarting``: waiting out its back-off, ``failed``), ``restarts`` how often it
    was restarted, ``address`` where it serves (empty when unknown). A process waiting
    to restart has no PID (0)."""

    name: str
    pid: int
    create_time: float
    state: str = "ready"
    restarts: int = 0
    address: str = ""

    @classmethod
    def of(
        cls, name: str, pid: int, state: str = "ready", restarts: int = 0, address: str = ""
    ) -> ChildRecord:
        """The record of ``pid``; one without a PID (0) if it is no longer running."""
        try:
            create_time: float = psutil.Process(pid).create_time()
        except psutil.Error:
            return cls(name, 0, 0.0, state, restarts, address)
        return cls(name, pid, create_time, state, restarts, address)

    def is_running(self) -> bool:
        """True while the process this record names runs (a reused PID does not count)."""
        return _live_process(self) is not None


def _live_process(record: ChildRecord) -> ProcessHandle | None:
    if record.pid <= 0:
        return None
    try:
        proc: ProcessHandle = psutil.Process(record.pid)
        if abs(proc.create_time() - record.create_time) > 0.01:
            return None
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
    except psutil.Error:
        return None
    return proc


@dataclass(frozen=True)
class InstanceInfo:
    pid: int
    url: str
    children: tuple[ChildRecord, ...] = field(default=())

    def to_json(self) -> str:
        return json.dumps(
            {
                "pid": self.pid,
                "url": self.url,
                "children": [
                    {
                        "name": c.name,
                        "pid": c.pid,
                        "create_time": c.create_time,
                        "state": c.state,
                        "restarts": c.restarts,
                        "address": c.address,
                    }
                    for c in self.children
                ],
            }
        )

    @classmethod
    def from_json(cls, text: str) -> InstanceInfo | None:
        """Parse the lock file's content; None when it is empty or unreadable."""
        try:
            raw = json.loads(text)
            children = tuple(
                ChildRecord(
                    str(c["name"]),
                    int(c["pid"]),
                    float(c["create_time"]),
                    str(c.get("state", "ready")),
                    int(c.get("restarts", 0)),
                    str(c.get("address", "")),
                )
                for c in raw.get("children", [])
            )
            return cls(int(raw["pid"]), str(raw["url"]), children)
        except (ValueError, KeyError, TypeError, AttributeError):
            return None


class AlreadyRunningError(Exception):
    def __init__(self, lock_path: Path, info: InstanceInfo | None) -> None:
        self.lock_path = lock_path
        self.info = info
        if info is None:
            who = "another `ticketing up`"
        else:
            who = f"`ticketing up` (PID {info.pid}) at {info.url}"
        super().__init__(f"{who} is already running with this data directory ({lock_path})")


def _read(fd: int) -> str:
    chunks = []
    offset = 0
    while chunk := os.pread(fd, 65536, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks).decode("utf-8", errors="replace")


class InstanceLock:
    """The held lock of the running instance. Release it (or use ``with``) when done."""

    def __init__(self, path: Path, fd: int, info: InstanceInfo, previous: InstanceInfo | None):
        self.path = path
        self._fd: int | None = fd
        self.info = info
        self.previous = previous
        """What a previous run that ended without cleaning up had recorded, if anything."""

    @classmethod
    def acquire(cls, data_dir: Path, url: str) -> InstanceLock:
        """Take the lock of ``data_dir`` or raise ``AlreadyRunningError`` naming its holder."""
        data_dir.mkdir(parents=True, exist_ok=True)
        path = data_dir / LOCK_FILE
        # No O_TRUNC: a refused instance must leave the holder's record intact.
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _read_holder(fd)
            os.close(fd)
            raise AlreadyRunningError(path, info) from None
        previous = InstanceInfo.from_json(_read(fd))
        lock = cls(path, fd, InstanceInfo(os.getpid(), url), previous)
        lock._write()
        return lock

    def record(self, children: Iterable[ChildRecord]) -> None:
        """Replace the list of processes this instance has started."""
        self.info = InstanceInfo(self.info.pid, self.info.url, tuple(children))
        self._write()

    def _write(self) -> None:
        if self._fd is None:
            return
        data = self.info.to_json().encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)

    def release(self) -> None:
        """Empty the record and drop the lock. The file stays: unlinking a lock file
        races with an instance that has just opened it."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    def __enter__(self) -> InstanceLock:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def _read_holder(fd: int) -> InstanceInfo | None:
    """The holder writes its record just after locking; give it a moment."""
    for _ in range(20):
        info = InstanceInfo.from_json(_read(fd))
        if info is not None:
            return info
        time.sleep(0.05)
    return None


def running_instance(data_dir: Path) -> InstanceInfo | None:
    """The instance running with ``data_dir``, or None. Never takes the lock for long."""
    path = data_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_holder(fd) or InstanceInfo(pid=0, url="unknown")
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def stop_leftovers(previous: InstanceInfo | None, timeout: float = 10) -> list[ChildRecord]:
    """Stop the processes a killed run had started and that still run; return them."""
    if previous is None:
        return []
    alive = [(record, proc) for record in previous.children if (proc := _live_process(record))]
    for _, proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.terminate()
    _, still = psutil.wait_procs([proc for _, proc in alive], timeout=timeout)
    for proc in still:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(still, timeout=5)
    return [record for record, _ in alive]
