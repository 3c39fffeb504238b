"""Keeping the stack's processes running: restart with back-off, give up on a crash loop.

Each process ``ticketing up`` runs (server, Stripe sandbox, mail catcher, service,
gateway) is a
``Unit``: something that can be launched again on the same port and data, and
probed for readiness. ``Healer.tick`` is called from the main thread a few times a
second; it notices a process that exited, restarts it after a back-off that doubles
with each crash in a row (as Kubernetes' ``restartPolicy: Always`` does), announces
it and its return to readiness, and reports a unit that keeps crashing without ever
getting ready (a crash loop) so the stack can stop. The others keep running meanwhile.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum

from ticketing_common.backoff import backoff
from ticketing_common.embedded import ChildProcess
from ticketing_devstack.processes import LogFollower, LogPrinter

STARTING = "starting"
READY = "ready"
RESTARTING = "restarting"
FAILED = "failed"


@dataclass(frozen=True)
class RestartPolicy:
    first_delay: float = 0.5
    max_delay: float = 10.0
    stable_after: float = 30.0
    """Up and ready this long, a unit's next crash starts from ``first_delay`` again."""
    crash_loop_crashes: int = 5
    """This many crashes in a row with no return to readiness between them is a crash
    loop: the stack stops. A process that gets ready again and is then killed (a fault,
    the OOM killer) is healing, not looping, however often that happens."""

    def delay(self, crashes_in_a_row: int) -> float:
        return backoff(crashes_in_a_row, self.first_delay, self.max_delay)


class Role(IntEnum):
    """What a unit is to the stack; the stack stops them in this order, services first
    and servers last (each role's units together, servers one by one, last started first)."""

    SERVICE = 0
    GATEWAY = 1
    STRIPE_SANDBOX = 2
    MAIL_CATCHER = 3
    SERVER = 4


def nothing_to_prepare() -> None:
    return None


@dataclass(eq=False)
class Unit:
    """One process the stack keeps running, and its restart bookkeeping. Every kind of
    child (server, Stripe sandbox, mail catcher, service, gateway) is one of these."""

    process: ChildProcess
    role: Role
    logs: LogFollower
    address: str
    """Where it serves, as shown to the user."""
    prepare: Callable[[], None] = nothing_to_prepare
    """Run before each start (a server's data directory)."""
    state: str = STARTING
    restarts: int = 0
    crashes_in_a_row: int = 0
    """Crashes since it was last ready for ``stable_after`` s: sets the back-off."""
    crashes_unready: int = 0
    """Crashes since it was last ready at all: a crash loop when it reaches the limit."""
    ready_since: float = field(default_factory=time.monotonic)
    started_at: float = 0.0
    restart_at: float = 0.0

    @property
    def name(self) -> str:
        return self.process.name

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def exit_code(self) -> int | None:
        """None while the process runs."""
        return self.process.exit_code()

    def launch(self) -> None:
        """Start the process (again: same port, same data)."""
        self.started_at = time.monotonic()
        self.prepare()
        self.process.start()

    def probe(self) -> bool:
        """True once the process serves."""
        return self.process.probe() is None

    def kill(self) -> None:
        self.process.kill()

    def last_lines(self) -> list[str]:
        self.logs.pump()
        return self.logs.tail.snapshot()


class CrashLoopError(Exception):
    """A unit crashed ``crash_loop_crashes`` times in a row without getting ready."""

    def __init__(self, unit: Unit) -> None:
        super().__init__(
            f"{unit.name} crashed {unit.crashes_unready} times in a row without getting "
            "ready; stopping everything."
        )
        self.unit = unit
        self.tail = unit.last_lines()


class Healer:
    """Restarts the units that exit. ``on_change`` is called whenever a unit's PID or
    state changes (the stack records them in the lock file)."""

    def __init__(
        self,
        units: Sequence[Unit],
        printer: LogPrinter,
        *,
        ready_timeout: float,
        on_change: Callable[[], None],
        policy: RestartPolicy | None = None,
    ) -> None:
        self.units = list(units)
        self.printer = printer
        self.ready_timeout = ready_timeout
        self.on_change = on_change
        self.policy = policy or RestartPolicy()

    def tick(self) -> None:
        """One pass over every unit. Raises ``CrashLoopError`` when one gives up."""
        for unit in self.units:
            now = time.monotonic()
            if unit.state == RESTARTING:
                if now >= unit.restart_at:
                    self._restart(unit)
                continue
            code = unit.exit_code()
            if code is not None:
                self._crashed(unit, f"exited with code {code}")
            elif unit.state == STARTING:
                if unit.probe():
                    unit.state = READY
                    unit.ready_since = time.monotonic()
                    unit.crashes_unready = 0
                    self.printer.say(f"{unit.name} is ready again (PID {unit.pid}).", "green")
                    self.on_change()
                elif now - unit.started_at > self.ready_timeout:
                    unit.kill()
                    self._crashed(unit, f"was not ready within {self.ready_timeout:.0f}s")
            elif unit.crashes_in_a_row and now - unit.ready_since > self.policy.stable_after:
                unit.crashes_in_a_row = 0

    def _restart(self, unit: Unit) -> None:
        unit.state = STARTING
        try:
            unit.launch()
        except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as exc:
            unit.kill()
            self._crashed(unit, f"did not start ({exc})")
            return
        self.on_change()

    def _crashed(self, unit: Unit, reason: str) -> None:
        now = time.monotonic()
        unit.crashes_unready += 1
        unit.crashes_in_a_row += 1
        if unit.crashes_unready >= self.policy.crash_loop_crashes:
            unit.state = FAILED
            self.on_change()
            raise CrashLoopError(unit)
        delay = self.policy.delay(unit.crashes_in_a_row)
        unit.restarts += 1
        unit.state = RESTARTING
        unit.restart_at = now + delay
        self.printer.say(
            f"{unit.name} {reason}; restarting in {delay:.1f} s (restart {unit.restarts})",
            "yellow",
        )
        self.on_change()
