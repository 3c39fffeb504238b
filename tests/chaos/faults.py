"""Faults and the runner that injects them into a running ``ticketing up``.

A fault is a signal to one component (found by PID in the data dir's lock file),
to ``ticketing up`` itself, or a fault point switched on in ``ticketing up``'s
environment. After a kill the runner only waits for the component to answer
again: if ``ticketing up`` heals (restarts the child itself) that is all there
is to it; if ``ticketing up`` exited instead, the :class:`Keeper` starts it again
on the same data dir and port, as an operator would, and says so. After a kill
of ``ticketing up`` itself, the runner notes which of its processes outlived it,
then starts it again on the same data dir.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.chaos import components
from tests.chaos.components import UP
from tests.chaos.workload import History
from tests.e2e.conftest import UP_TIMEOUT, Stack
from ticketing_common.embedded import free_port
from ticketing_devstack.stack import STRIPE_SANDBOX_NAME

# Outlives a `ticketing up` that stops everything and is started again (~30 s here).
RECOVERY_TIMEOUT = 150.0
# How long a killed `ticketing up`'s processes get to follow it before they count as orphans.
ORPHAN_GRACE = 3.0


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` in os.environ while inside: a child started meanwhile inherits them."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class ChaosStack:
    """``ticketing up`` on one data dir and gateway port, started again on the same ones."""

    def __init__(
        self, data_dir: Path, *, expiration_window: int, env: Mapping[str, str] | None = None
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = dict(env or {})
        self.args = ("--expiration-window", str(expiration_window))
        self.stack: Stack | None = None
        self.incarnations: list[Stack] = []

    def start(self) -> None:
        with environment(self.env):
            self.stack = Stack(self.data_dir, self.port, extra_args=self.args)
        self.incarnations.append(self.stack)
        self.stack.wait_until_up(UP_TIMEOUT)

    @property
    def pid(self) -> int | None:
        return self.stack.proc.pid if self.stack is not None else None

    def alive(self) -> bool:
        return self.stack is not None and self.stack.proc.poll() is None

    def wait_exit(self, timeout: float) -> int | None:
        if self.stack is None:
            return None
        with contextlib.suppress(Exception):
            return self.stack.proc.wait(timeout)
        return None

    def stop(self) -> None:
        if self.stack is not None:
            self.stack.stop()

    def output(self) -> list[str]:
        """Everything every incarnation printed, each after a header line."""
        lines: list[str] = []
        for number, stack in enumerate(self.incarnations, 1):
            lines.append(f"=== ticketing up #{number} (PID {stack.proc.pid}) ===")
            lines.extend(stack.lines)
        return lines


@dataclass
class Death:
    """A component seen gone (or replaced by a new PID) by the keeper."""

    t: float
    name: str
    pid: int


@dataclass
class Keeper:
    """Watches the running stack: notes every component death and starts ``ticketing up``
    again whenever it has exited. Holds ``lock`` while it acts, so a fault runner
    can act on the stack without it."""

    chaos: ChaosStack
    history: History
    deaths: list[Death] = field(default_factory=list)
    stack_restarts: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    failure: str | None = None
    """Why the keeper stopped watching early, if it did."""
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _pids: dict[str, int] = field(default_factory=dict)

    def start(self) -> None:
        self._pids = components.live_children(self.chaos.data_dir)
        self._thread = threading.Thread(target=self._run, name="chaos-keeper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(UP_TIMEOUT + 30)

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            with self.lock:
                try:
                    self.check()
                except Exception as exc:  # e.g. `ticketing up` could not start again
                    self.failure = f"{type(exc).__name__}: {exc}"
                    return

    def check(self) -> None:
        """One look: note deaths; start ``ticketing up`` again if it has gone."""
        if not self.chaos.alive():
            self.stack_restarts.append(self.history.now())
            self.chaos.start()
            self._pids = components.live_children(self.chaos.data_dir)
            return
        running = components.live_children(self.chaos.data_dir)
        for name, known in list(self._pids.items()):
            if running.get(name) != known:
                self.deaths.append(Death(self.history.now(), name, known))
                del self._pids[name]
        self._pids.update(running)

    def saw_death(self, name: str, since: float) -> bool:
        return any(d.name == name and d.t >= since for d in self.deaths)


@dataclass(frozen=True)
class Fault:
    """One fault of the matrix."""

    name: str
    target: str | None
    """A component name as the lock file records it, UP, or None (a fault point)."""
    signum: signal.Signals = signal.SIGKILL
    env: Mapping[str, str] = field(default_factory=dict)
    """Given to ``ticketing up`` from its start (fault points)."""


AFTER_CHARGE = Fault(
    "payments killed after the charge",
    None,
    env={"FAULT_POINTS": "payments.after_charge=0.3"},
)
UP_KILL = Fault("SIGKILL ticketing up", UP)
NATS_RESTART = Fault("NATS restarted (SIGTERM) mid-flight", "nats", signal.SIGTERM)
MATRIX: tuple[Fault, ...] = (
    *(Fault(f"SIGKILL {name}", name) for name in components.SERVICES),
    Fault("SIGKILL NATS", "nats"),
    Fault("SIGKILL PostgreSQL", "postgres"),
    Fault("SIGKILL Redis", "redis"),
    Fault("SIGKILL Stripe sandbox", STRIPE_SANDBOX_NAME),
    UP_KILL,
    NATS_RESTART,
    AFTER_CHARGE,
)


@dataclass
class Injection:
    """What one injected fault did."""

    fault: Fault
    at: float
    pid: int | None = None
    orphans: list[str] = field(default_factory=list)
    """For a kill of ``ticketing up``: its processes still running ORPHAN_GRACE s later."""
    alive_again: float | None = None
    """When a process of the component ran again."""
    stack_restarted: bool = False
    """True when ``ticketing up`` had to be started again (it did not heal by itself)."""


def inject(fault: Fault, chaos: ChaosStack, keeper: Keeper) -> Injection:
    """Deliver ``fault`` now and wait until a process of its target runs again."""
    if fault.target is None:
        return Injection(fault, keeper.history.now())
    with keeper.lock:
        if fault.target == UP:
            return _kill_up(fault, chaos, keeper)
        pid = components.pid_of(chaos.data_dir, fault.target)
        injection = Injection(fault, keeper.history.now(), pid)
        restarts = len(keeper.stack_restarts)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, fault.signum)
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while time.monotonic() < deadline:
        with keeper.lock:
            keeper.check()
            now_pid = components.pid_of(chaos.data_dir, fault.target)
        if now_pid is not None and now_pid != pid:
            injection.alive_again = keeper.history.now()
            break
        time.sleep(0.1)
    injection.stack_restarted = len(keeper.stack_restarts) > restarts
    return injection


def _kill_up(fault: Fault, chaos: ChaosStack, keeper: Keeper) -> Injection:
    injection = Injection(fault, keeper.history.now(), chaos.pid)
    recorded = components.instance(chaos.data_dir)
    if chaos.pid is not None:
        os.kill(chaos.pid, signal.SIGKILL)
    chaos.wait_exit(10)
    time.sleep(ORPHAN_GRACE)
    if recorded is not None:
        injection.orphans = [
            f"{child.name} (PID {child.pid})" for child in recorded.children if child.is_running()
        ]
    # Started again on the same data dir: it stops what the killed run left behind.
    keeper.stack_restarts.append(keeper.history.now())
    chaos.start()
    keeper.check()
    injection.alive_again = keeper.history.now()
    injection.stack_restarted = True
    return injection
