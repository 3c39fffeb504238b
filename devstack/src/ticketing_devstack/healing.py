"""Keeping the stack's processes running: restart with back-off, give up on a crash loop.

Each process ``ticketing up`` runs (server, Stripe sandbox, service, gateway) is a
``Unit``: something that can be launched again on the same port and data, and
probed for readiness. ``Healer.tick`` is called from the main thread a few times a
second; it notices a process that exited, restarts it after a back-off that doubles
with each crash in a row (as Kubernetes' ``restartPolicy: Always`` does), announces
it and its return to readiness, and reports a unit that keeps crashing without ever
getting ready (a crash loop) so the stack can stop. The others keep running meanwhile.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import httpx

from ticketing_common.backoff import backoff
from ticketing_common.embedded import (
    HOST,
    NatsServer,
    PostgresServer,
    RedisServer,
    port_open,
)
from ticketing_devstack.processes import LogPrinter, Managed, Supervisor

Server = NatsServer | PostgresServer | RedisServer

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


@dataclass(eq=False)
class Unit(ABC):
    """One process the stack keeps running, and its restart bookkeeping."""

    name: str
    state: str = READY
    restarts: int = 0
    crashes_in_a_row: int = 0
    """Crashes since it was last ready for ``stable_after`` s: sets the back-off."""
    crashes_unready: int = 0
    """Crashes since it was last ready at all: a crash loop when it reaches the limit."""
    ready_since: float = field(default_factory=time.monotonic)
    started_at: float = 0.0
    restart_at: float = 0.0

    @property
    @abstractmethod
    def pid(self) -> int | None: ...

    @abstractmethod
    def exit_code(self) -> int | None:
        """None while the process runs."""

    @abstractmethod
    def launch(self) -> None:
        """Start the process again (same port, same data); may wait until it listens."""

    @abstractmethod
    def probe(self, client: httpx.Client) -> bool:
        """True once the process serves."""

    @abstractmethod
    def kill(self) -> None: ...

    @abstractmethod
    def last_lines(self) -> list[str]: ...


@dataclass(eq=False)
class ServerUnit(Unit):
    """An embedded server; ``launch`` returns once it accepts connections."""

    server: Server | None = None
    supervisor: Supervisor | None = None

    @property
    def _server(self) -> Server:
        assert self.server is not None
        return self.server

    @property
    def pid(self) -> int | None:
        return self._server.pid

    def exit_code(self) -> int | None:
        proc = self._server.proc
        return proc.poll() if proc is not None else -1

    def launch(self) -> None:
        self._server.stop()  # releases what the dead process left (its log handle)
        self._server.start()

    def probe(self, client: httpx.Client) -> bool:
        return True

    def kill(self) -> None:
        proc = self._server.proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)

    def last_lines(self) -> list[str]:
        assert self.supervisor is not None
        return self.supervisor.settle(self.name)


@dataclass(eq=False)
class ProcessUnit(Unit):
    """A process started through the supervisor (service, Stripe sandbox, gateway);
    ready when ``ready_url`` answers 200, or, without one, when ``port`` accepts."""

    supervisor: Supervisor | None = None
    process: Managed | None = None
    argv: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    port: int = 0
    ready_url: str | None = None

    @property
    def _supervisor(self) -> Supervisor:
        assert self.supervisor is not None
        return self.supervisor

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def exit_code(self) -> int | None:
        return self.process.returncode if self.process is not None else -1

    def launch(self) -> None:
        if self.process is not None:
            self._supervisor.forget(self.process)
        self.process = self._supervisor.spawn(self.name, self.argv, env=self.env)

    def probe(self, client: httpx.Client) -> bool:
        if self.ready_url is None:
            return port_open(self.port, HOST)
        try:
            return client.get(self.ready_url).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.popen.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.popen.wait(5)

    def last_lines(self) -> list[str]:
        return self._supervisor.settle(self.name)


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
        self._client = httpx.Client(timeout=1.0)

    def close(self) -> None:
        self._client.close()

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
                if unit.probe(self._client):
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
        unit.started_at = time.monotonic()
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
