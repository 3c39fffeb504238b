"""The chaos matrix, longer: one fresh ``ticketing up`` per fault, a bigger workload, and
a table of what each fault did.

Run with ``uv run python bench/chaos.py [--tickets N] [--buyers M] [--duration S]
[--repeat R] [--only NAME…] [--markdown PATH]``. For each fault of the matrix
(``tests/chaos/faults.py``) it starts ``ticketing up`` on a fresh data dir under a
temporary directory (127.0.0.1 only), runs the workload, injects the fault a few
seconds in, waits for convergence and checks every invariant
(``tests/chaos/invariants.py``). It prints one line per run as it goes, then the
table, and writes the table as Markdown when ``--markdown`` is given. Every run's
history (JSONL) and ``ticketing up`` output are kept with ``--keep DIR``.

Columns: requests sent through the gateway during the fault window (kill → the
killed component answers again) and how many got no answer or a 5xx; of the
requests to the *other* services in that window, the share answered; the
recovery time; whether ``ticketing up`` had to be started again by hand (it did
not heal); processes that outlived a killed ``ticketing up``; the invariants.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the suite lives in tests/chaos

from tests.chaos.faults import MATRIX  # noqa: E402
from tests.chaos.invariants import INVARIANTS  # noqa: E402
from tests.chaos.scenario import RunResult, Scenario, run  # noqa: E402
from tests.chaos.workload import WorkloadConfig  # noqa: E402

FAULT_AT = 8.0
HEADER = (
    "fault",
    "runs",
    "requests in window",
    "failed in window",
    "other services answered",
    "recovery (s)",
    "ticketing up restarted",
    "orphans",
    "invariants",
)


def _cells(fault: str, results: list[RunResult]) -> list[str]:
    figures = [f for r in results for f in r.figures]
    requests = sum(f.requests for f in figures)
    failed = sum(f.failed for f in figures)
    others = sum(f.others for f in figures)
    others_ok = sum(f.others_ok for f in figures)
    fired = [f for f in figures if f.fired]
    recoveries = [f.recovery for f in fired if f.recovery is not None]
    if not fired:
        recovery = "did not fire"
    elif len(recoveries) < len(fired):
        recovery = f"never ({len(fired) - len(recoveries)} of {len(fired)})"
    else:
        recovery = " / ".join(f"{value:.1f}" for value in recoveries)
    restarted = sum(1 for f in figures if f.stack_restarted)
    orphans = sorted({o.split(" (")[0] for f in figures for o in f.orphans})
    violated = sorted({v.invariant for r in results for v in r.violations})
    held = sum(1 for r in results if r.held)
    invariants = (
        f"all held ({held}/{len(results)})"
        if not violated
        else f"{held}/{len(results)} held; violated: " + "; ".join(violated)
    )
    share = f"{others_ok}/{others} ({100 * others_ok / others:.0f} %)" if others else "n/a"
    return [
        fault,
        str(len(results)),
        str(requests),
        f"{failed} ({100 * failed / requests:.0f} %)" if requests else "0",
        share,
        recovery,
        f"{restarted}/{len(figures)}",
        ", ".join(orphans) if orphans else "none",
        invariants,
    ]


def markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=20)
    parser.add_argument("--buyers", type=int, default=30)
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--window", type=int, default=8, help="expiration window, seconds")
    parser.add_argument("--repeat", type=int, default=1, help="runs per fault")
    parser.add_argument("--only", nargs="*", default=None, help="fault names to run")
    parser.add_argument("--markdown", type=Path, default=None, help="write the table here")
    parser.add_argument("--keep", type=Path, default=None, help="keep histories and logs here")
    args = parser.parse_args()
    workload = WorkloadConfig(tickets=args.tickets, buyers=args.buyers, duration=args.duration)
    faults = [f for f in MATRIX if args.only is None or f.name in args.only]
    base = args.keep or Path(tempfile.mkdtemp(prefix="ticketing-chaos-"))
    rows = []
    failures: list[str] = []
    all_held = True
    started = time.monotonic()
    for number, fault in enumerate(faults):
        results = []
        for attempt in range(args.repeat):
            scenario = Scenario(
                fault.name,
                faults=((FAULT_AT, fault),),
                workload=workload,
                expiration_window=args.window,
            )
            workdir = base / f"{number:02d}-{attempt}"
            workdir.mkdir(parents=True, exist_ok=True)
            try:
                result = await run(scenario, workdir)
            except Exception as exc:  # one broken run is reported; the matrix goes on
                print(f"chaos run {fault.name!r} failed: {exc}", flush=True)
                failures.append(f"{fault.name}: {exc}")
                all_held = False
                continue
            print(result.report(), flush=True)
            results.append(result)
            all_held = all_held and result.passed
        if results:
            rows.append(_cells(fault.name, results))
    table = markdown(rows)
    print()
    print(
        f"{len(faults)} faults x {args.repeat} run(s), {args.tickets} tickets, "
        f"{args.buyers} buyers, {args.duration:.0f} s of workload each, "
        f"{(time.monotonic() - started) / 60:.1f} min in all; invariants checked: "
        + "; ".join(INVARIANTS)
    )
    print(table)
    for failure in failures:
        print(f"run failed: {failure}")
    if args.markdown is not None:
        args.markdown.write_text(table)
    return 0 if all_held else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
