"""One chaos run: a fresh ``ticketing up``, the workload, faults at set times, then
convergence and the invariants; and the figures measured for each fault.

Shared by the chaos tests and ``bench/chaos.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.chaos import invariants
from tests.chaos.components import SERVICES, UP
from tests.chaos.faults import UP_KILL, ChaosStack, Fault, Injection, Keeper, inject
from tests.chaos.invariants import Snapshot, Violation
from tests.chaos.workload import (
    GATEWAY_PROBES,
    Exchange,
    History,
    Workload,
    WorkloadConfig,
    is_probe,
)

# Given to every run so convergence takes seconds, not minutes: payments' reconciler runs
# every second, and an attempt whose charge never reached the sandbox is given up after
# about STRIPE_TIMEOUT_SECONDS x (1 + STRIPE_MAX_NETWORK_RETRIES).
# The buyers all sign up and order from one address, each retrying a taken ticket within a
# second and leaving orders to expire while ordering more, and retry payments through
# outages: the rate limits and the cap on open orders are raised so the workload stays
# what it is (not switched off; the re-order cool-down stays on).
BASE_ENV = {
    "REFUND_SWEEP_SECONDS": "1",
    "STRIPE_TIMEOUT_SECONDS": "2",
    "STRIPE_MAX_NETWORK_RETRIES": "1",
    "ORDER_RATE_PER_USER": "100000/minute",
    "ORDER_RATE_PER_CLIENT": "100000/minute",
    "MAX_OPEN_ORDERS_PER_USER": "1000",
    "SIGNUP_RATE_PER_CLIENT": "1000/hour",
    "PAYMENT_RATE_PER_USER": "1000/hour",
    "PAYMENT_RATE_PER_ORDER": "100/10 minutes",
}
CONVERGENCE_TIMEOUT = 90.0
FAULT_POINT_TARGET = "payments"  # the one fault point, payments.after_charge, kills payments
# After the buyers are done, probes go on until every killed component has answered a
# probe again (at most RECOVERY_WAIT s: a component that never answers is a finding),
# then PROBE_TAIL s more.
PROBE_TAIL = 2.0
RECOVERY_WAIT = 120.0
RECOVERY_POLL = 0.5


@dataclass(frozen=True)
class Scenario:
    name: str
    faults: Sequence[tuple[float, Fault]]
    """(seconds after the workload started, fault)."""
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    expiration_window: int = 8


@dataclass(frozen=True)
class FaultFigures:
    """What one fault did to the requests, measured from the history."""

    fault: str
    requests: int
    """Requests through the gateway sent in the fault window (kill to recovery)."""
    failed: int
    """Of those, how many got no answer or a 5xx."""
    others: int
    others_ok: int
    """Requests to the services other than the one killed, and how many were answered."""
    recovery: float | None
    """Seconds from the kill until the component answered again (and, for a server or
    ``ticketing up``, every gateway probe of one round was answered); None = never."""
    stack_restarted: bool
    orphans: list[str]
    fired: int
    """How many times the fault happened (a fault point may fire any number of times)."""

    def row(self) -> dict[str, object]:
        return {
            "fault": self.fault,
            "requests": self.requests,
            "failed": self.failed,
            "others": self.others,
            "others_ok": self.others_ok,
            "recovery": self.recovery,
            "stack_restarted": self.stack_restarted,
            "orphans": self.orphans,
            "fired": self.fired,
        }


@dataclass
class RunResult:
    scenario: str
    figures: list[FaultFigures]
    violations: list[Violation]
    snapshot: Snapshot
    converged: bool
    history: History
    orders: int
    requests: int
    workdir: Path

    @property
    def held(self) -> bool:
        return not self.violations

    @property
    def not_healed(self) -> list[str]:
        """Faults after which ``ticketing up`` did not heal: it had to be started again
        after a child's death, or a killed ``ticketing up`` left processes behind."""
        return [
            f.fault
            for f in self.figures
            if f.orphans or (f.stack_restarted and f.fault != UP_KILL.name)
        ]

    @property
    def passed(self) -> bool:
        """Every invariant held and ``ticketing up`` healed every fault by itself."""
        return self.held and not self.not_healed

    def report(self) -> str:
        lines = [
            f"chaos run {self.scenario!r}: {self.requests} requests, {self.orders} orders, "
            f"converged: {'yes' if self.converged else 'NO (timed out)'}"
        ]
        for f in self.figures:
            recovery = f"{f.recovery:.1f}s" if f.recovery is not None else "never"
            recovery = recovery if f.fired else "n/a (did not fire)"
            lines.append(
                f"  {f.fault}: fired {f.fired}x, {f.requests} requests in window, "
                f"{f.failed} failed, others answered {f.others_ok}/{f.others}, "
                f"recovery {recovery}, ticketing up restarted: {f.stack_restarted}"
                + (f", orphans: {', '.join(f.orphans)}" if f.orphans else "")
            )
        if self.not_healed:
            lines.append(f"  NOT HEALED by ticketing up: {', '.join(self.not_healed)}")
        if self.violations:
            lines.append(f"  {len(self.violations)} invariant(s) violated:")
            lines.extend(f"    - {v}" for v in self.violations)
        else:
            lines.append("  every invariant held")
        lines.append(f"  history: {self.history.path}")
        return "\n".join(lines)


def _recovered_at(history: History, target: str | None, since: float) -> float | None:
    """When ``target`` first answered a probe after ``since``; for a server or ``ticketing
    up``, the first probe round after it where every gateway probe was answered too."""
    probes = [e for e in history.exchanges if is_probe(e) and e.t >= since]
    if target in SERVICES:
        return next((e.t for e in probes if e.service == target and e.answered), None)
    rounds: dict[str, list[Exchange]] = {}
    for exchange in probes:
        rounds.setdefault(exchange.buyer, []).append(exchange)
    for members in sorted(rounds.values(), key=lambda round_: round_[0].t):
        gateway = [e for e in members if e.via_gateway]
        own = [e for e in members if e.service == target]
        gateway_ok = len(gateway) >= GATEWAY_PROBES and all(e.answered for e in gateway)
        if gateway_ok and (target == UP or (own and all(e.answered for e in own))):
            return members[0].t
    return None


def figures(
    injection: Injection, history: History, keeper: Keeper, others: Sequence[Injection]
) -> FaultFigures:
    fault = injection.fault
    window_end = history.now()
    if fault.target is None:
        # A fault point: each death of the component it kills is one firing, except
        # deaths while another fault was being recovered from (a whole-stack restart).
        target = FAULT_POINT_TARGET
        busy = [(o.at, o.alive_again or window_end) for o in others if o is not injection]
        deaths = [
            d.t
            for d in keeper.deaths
            if d.name == target and not any(a <= d.t <= b for a, b in busy)
        ]
        recoveries = [_recovered_at(history, target, t) for t in deaths]
        done = [r - t for r, t in zip(recoveries, deaths, strict=True) if r is not None]
        recovery: float | None = max(done) if done else None
        fired = len(deaths)
        # One window per firing: from the death until payments answered again.
        windows = [
            (t, window_end if r is None else r) for t, r in zip(deaths, recoveries, strict=True)
        ]
        # Each firing must be healed by `ticketing up` itself, never by starting it again.
        restarted = any(
            injection.at <= t and not any(a <= t <= b for a, b in busy)
            for t in keeper.stack_restarts
        )
    else:
        target = fault.target
        # Answers count from when a new process runs: until then a dying process (or,
        # after a kill of `ticketing up`, its orphans) may still answer.
        again = injection.alive_again
        recovered = None if again is None else _recovered_at(history, target, again)
        recovery = None if recovered is None else recovered - injection.at
        windows = [(injection.at, recovered if recovered is not None else window_end)]
        fired = 1
        restarted = injection.stack_restarted
    # Windows may overlap (a firing during the recovery of the previous one): each once.
    window = list(
        {
            id(e): e for start, end in windows for e in history.between(start, end) if e.via_gateway
        }.values()
    )
    elsewhere = [e for e in window if e.service != target]
    return FaultFigures(
        fault.name,
        len(window),
        sum(1 for e in window if not e.answered),
        len(elsewhere),
        sum(1 for e in elsewhere if e.answered),
        recovery,
        restarted,
        injection.orphans,
        fired,
    )


def _pending(injections: Sequence[Injection], history: History, keeper: Keeper) -> bool:
    """Whether a killed component has not answered a probe since it was last killed."""
    for injection in injections:
        target = injection.fault.target
        if target is None:
            deaths = [d.t for d in keeper.deaths if d.name == FAULT_POINT_TARGET]
            since = max(deaths, default=None)
        else:
            since = injection.alive_again
        if (
            since is not None
            and _recovered_at(history, target or FAULT_POINT_TARGET, since) is None
        ):
            return True
    return False


async def _until_recovered(
    injections: Sequence[Injection], history: History, keeper: Keeper
) -> None:
    for _ in range(int(RECOVERY_WAIT / RECOVERY_POLL)):
        if not _pending(injections, history, keeper):
            return
        await asyncio.sleep(RECOVERY_POLL)


async def run(scenario: Scenario, workdir: Path) -> RunResult:
    """Run ``scenario`` in ``workdir`` (data dir, history, output); always stops the stack."""
    env = dict(BASE_ENV)
    for _, fault in scenario.faults:
        env.update(fault.env)
    chaos = ChaosStack(workdir / "data", expiration_window=scenario.expiration_window, env=env)
    history = History(workdir / "history.jsonl")
    try:
        await asyncio.to_thread(chaos.start)
        keeper = Keeper(chaos, history)
        keeper.start()
        workload = Workload(chaos.url, chaos.data_dir, scenario.workload, history)
        stop_probing = asyncio.Event()
        try:
            await workload.setup()
            prober = asyncio.create_task(workload.probe(stop_probing))
            buyers = asyncio.create_task(workload.run())
            started = asyncio.get_running_loop().time()
            injections = []
            for at, fault in sorted(scenario.faults, key=lambda pair: pair[0]):
                delay = at - (asyncio.get_running_loop().time() - started)
                await asyncio.sleep(max(delay, 0))
                injections.append(await asyncio.to_thread(inject, fault, chaos, keeper))
            await buyers
            await _until_recovered(injections, history, keeper)
            await asyncio.sleep(PROBE_TAIL)
            stop_probing.set()
            await prober
        finally:
            stop_probing.set()
            keeper.stop()
            await workload.close()
        if keeper.failure is not None:
            raise AssertionError(f"the stack could not be kept running: {keeper.failure}")
        measured = [figures(i, history, keeper, injections) for i in injections]
        snapshot = await invariants.converged(chaos.data_dir, CONVERGENCE_TIMEOUT)
        violations = invariants.check(snapshot, history)
        return RunResult(
            scenario.name,
            measured,
            violations,
            snapshot,
            snapshot.quiescent,
            history,
            len(workload.outcome.orders),
            sum(1 for e in history.exchanges if not is_probe(e)),
            workdir,
        )
    finally:
        history.close()
        await asyncio.to_thread(chaos.stop)
        (workdir / "ticketing-up.log").write_text("\n".join(chaos.output()) + "\n")
