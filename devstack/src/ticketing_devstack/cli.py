"""The ``ticketing`` command (Typer): options and help text; the work is in ``stack.py``."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
import warnings
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ticketing_common import tracing
from ticketing_common.spec import ENTRY_POINT_GROUP
from ticketing_devstack import figures
from ticketing_devstack import logs as log_files
from ticketing_devstack.environment import TRACES_DIR_VARIABLE
from ticketing_devstack.instance import ChildRecord, InstanceInfo, running_instance, stop_leftovers
from ticketing_devstack.processes import LogPrinter
from ticketing_devstack.registry import gateway_routes, installed_specs
from ticketing_devstack.stack import INFRA_NAMES, StackConfig, run

app = typer.Typer(
    name="ticketing",
    help=(
        "Run the Ticketing system on this machine: embedded NATS JetStream, PostgreSQL "
        "and Redis, every installed service as its own process, and a Caddy gateway "
        "on 127.0.0.1."
    ),
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)

DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        help="Where databases, broker and Redis data, logs and the JWT key live; "
        "kept across runs. Relative to the current directory.",
        file_okay=False,
    ),
]


def _name_width() -> int:
    """Width of the process-name column: the longest name a child of ``up`` can have."""
    # The entry points' names, not the specs: reading them imports no service.
    services = (entry.name for entry in entry_points(group=ENTRY_POINT_GROUP))
    return max(len(name) for name in (*INFRA_NAMES, *services))


@app.command()
def up(
    port: Annotated[
        int,
        typer.Option(help="Port of the gateway, on 127.0.0.1.", min=1, max=65535),
    ] = 8000,
    data_dir: DataDir = Path(".ticketing"),
    expiration_window: Annotated[
        int,
        typer.Option(
            "--expiration-window",
            envvar="EXPIRATION_WINDOW_SECONDS",
            metavar="SECONDS",
            min=1,
            help="How long an order reserves its ticket before it expires.",
        ),
    ] = 900,
    ready_timeout: Annotated[
        float,
        typer.Option(
            metavar="SECONDS", min=1, help="How long to wait for every service to be ready."
        ),
    ] = 90.0,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            help="Stream every process's log here behind a `name |` prefix. Without it, "
            "one line per process as it starts, becomes ready or restarts, plus the "
            "services' warnings and errors; the full logs are in <data-dir>/logs.",
        ),
    ] = False,
    raw_logs: Annotated[
        bool,
        typer.Option("--raw-logs", help="Print the services' JSON log lines as they are."),
    ] = False,
    traces: Annotated[
        bool,
        typer.Option(
            "--traces",
            help="Trace every request and event: each service writes its spans to "
            "<data-dir>/traces/<service>.jsonl; `ticketing traces` prints them.",
        ),
    ] = False,
) -> None:
    """Start everything, print the URL, and run until Ctrl-C, SIGTERM or `ticketing down`.

    Uses external servers instead of embedded ones when [bold]NATS_URL[/],
    [bold]DATABASE_URL[/] (an admin URL; one database per service is created on it)
    or [bold]REDIS_URL[/] is set. Payments talk to Stripe with [bold]STRIPE_SECRET_KEY[/]
    when it is set (and web gets [bold]STRIPE_PUBLISHABLE_KEY[/]); without it a local
    Stripe sandbox that understands Stripe's test cards stands in. Mail goes to the SMTP
    server in [bold]SMTP_HOST[/] when it is set; without it a local mail catcher keeps
    every mail and shows it on the page printed as "Mail:". Other environment
    variables reach the services. A process that exits is restarted after a back-off
    (0.5 s, doubling up to 10 s) while the others keep running; one that crashes 5
    times in a row without getting ready stops everything, with exit code 1. No
    process outlives
    this command, however it ends. Only one instance runs per data directory.
    """
    # pgserver's platformdirs warns about XDG_RUNTIME_DIR, which nothing here uses.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    specs = installed_specs()
    printer = LogPrinter(
        Console(highlight=False), prefix_width=_name_width(), raw=raw_logs, verbose=verbose
    )
    environ = dict(os.environ)
    if traces:
        environ[TRACES_DIR_VARIABLE] = str(traces_dir(data_dir.absolute()))
    config = StackConfig(
        port=port,
        data_dir=data_dir.absolute(),
        expiration_window=expiration_window,
        ready_timeout=ready_timeout,
        environ=environ,
    )
    raise typer.Exit(run(config, specs, printer))


def _state(child: ChildRecord) -> str:
    """What ``up`` recorded, unless the process is gone since (crashed, not yet seen)."""
    if child.pid and not child.is_running():
        return "exited"
    return child.state


def status_json(data_dir: Path, info: InstanceInfo | None) -> dict[str, object]:
    """``ticketing status --json``."""
    if info is None:
        return {"running": False, "dataDir": str(data_dir)}
    status: dict[str, object] = {
        "running": True,
        "pid": info.pid,
        "url": info.url,
        "dataDir": str(data_dir),
        "processes": [
            {
                "name": child.name,
                "pid": child.pid or None,
                "state": _state(child),
                "restarts": child.restarts,
                "address": child.address or None,
            }
            for child in info.children
        ],
    }
    status["figures"] = _figures(info).to_json()
    return status


def _figures(info: InstanceInfo) -> figures.Figures:
    """The key figures from the running services' ``/metrics``."""
    services = {entry.name for entry in entry_points(group=ENTRY_POINT_GROUP)}
    ports = {
        child.name: figures.service_port(child.pid) if child.pid and child.is_running() else None
        for child in info.children
        if child.name in services
    }
    return figures.scrape(ports)


@app.command()
def status(
    data_dir: DataDir = Path(".ticketing"),
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (format in the README).")
    ] = False,
) -> None:
    """Say whether Ticketing runs with this data directory, and each process it started:
    PID, state (starting, ready, restarting, exited, failed), address (the mail catcher's
    is its mailbox page) and restarts; then the key
    figures from the services' metrics (requests, reservations, payments, outbox and
    consumer backlogs, dead letters, expiration lateness).

    Exit code 0 when it runs, 1 when it does not.
    """
    console = Console(highlight=False)
    data_dir = data_dir.absolute()
    info = running_instance(data_dir)
    if as_json:
        print(json.dumps(status_json(data_dir, info)))
        raise typer.Exit(0 if info is not None else 1)
    if info is None:
        console.print(f"Ticketing is not running with {data_dir}.")
        raise typer.Exit(1)
    console.print(f"Ticketing is running at [bold]{info.url}[/] (PID {info.pid}).")
    width = _name_width()
    for child in info.children:
        pid = str(child.pid) if child.pid else "-"
        restarts = f"  restarts {child.restarts}" if child.restarts else ""
        # Where it serves: the mail catcher's mailbox page, a service's port, ...
        address = f"  {child.address}" if child.address else ""
        console.print(
            f"  {child.name:<{width}} PID {pid:<8} {_state(child):<10}{address}{restarts}",
            markup=False,
            soft_wrap=True,
        )
    console.print("Key figures (since each service started):")
    for line in _figures(info).lines():
        console.print(f"  {line}", markup=False)


@app.command()
def down(
    data_dir: DataDir = Path(".ticketing"),
    timeout: Annotated[
        float,
        typer.Option(metavar="SECONDS", min=1, help="How long to wait before killing it."),
    ] = 60.0,
) -> None:
    """Stop the Ticketing running with this data directory (from another terminal):
    SIGTERM to its `ticketing up`, which stops everything it started; after --timeout,
    SIGKILL (its processes die with it).

    Exit code 0 when it stopped or was not running.
    """
    console = Console(highlight=False)
    data_dir = data_dir.absolute()
    info = running_instance(data_dir)
    if info is None:
        console.print(f"Ticketing is not running with {data_dir}.")
        return
    if info.pid <= 0:
        console.print("[red]The data directory is locked, but by whom cannot be read.[/]")
        raise typer.Exit(1)
    console.print(f"Stopping Ticketing at {info.url} (PID {info.pid})…")
    started = time.monotonic()
    os.kill(info.pid, signal.SIGTERM)
    if not _wait_released(data_dir, timeout):
        console.print(f"[yellow]It did not stop within {timeout:.0f}s; killing it.[/]")
        os.kill(info.pid, signal.SIGKILL)
        _wait_released(data_dir, 10)
        stop_leftovers(info)
    console.print(f"Stopped in {time.monotonic() - started:.1f}s.")


def _wait_released(data_dir: Path, timeout: float) -> bool:
    """True once no instance holds the lock of ``data_dir`` (it is released last)."""
    deadline = time.monotonic() + timeout
    while running_instance(data_dir) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


@app.command()
def logs(
    name: Annotated[
        str | None,
        typer.Argument(help="A process, as `ticketing status` names it; all when omitted."),
    ] = None,
    data_dir: DataDir = Path(".ticketing"),
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing what is appended.")
    ] = False,
    lines: Annotated[
        int,
        typer.Option("--lines", "-n", min=0, help="Lines from the end of each log; 0: all."),
    ] = 100,
    raw_logs: Annotated[
        bool, typer.Option("--raw-logs", help="Print JSON log lines as they are.")
    ] = False,
) -> None:
    """Print the logs `ticketing up` keeps in <data-dir>/logs (they survive restarts)."""
    try:
        files = log_files.select(data_dir.absolute(), name)
    except log_files.UnknownLogError as exc:
        Console(stderr=True).print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    printer = LogPrinter(
        Console(highlight=False),
        prefix_width=_name_width(),
        raw=raw_logs,
        show_names=name is None,
    )
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends --follow
        log_files.show(files, printer, lines=lines, follow=follow)


def traces_dir(data_dir: Path) -> Path:
    return data_dir / "traces"


@app.command(name="traces")
def show_traces(
    data_dir: DataDir = Path(".ticketing"),
    last: Annotated[
        int, typer.Option("--last", "-n", min=1, help="How many of the latest traces.")
    ] = 5,
    trace_id: Annotated[
        str | None, typer.Option("--trace", help="Only this trace (its id, or its start).")
    ] = None,
    min_services: Annotated[
        int,
        typer.Option(
            "--min-services",
            min=1,
            help="Only traces that reach at least this many services (2: what crossed an event).",
        ),
    ] = 1,
) -> None:
    """Print the traces `ticketing up --traces` recorded, oldest first, each as a tree:
    service, span, duration. A span whose parent is not recorded starts a tree of its own.
    """
    console = Console(highlight=False, soft_wrap=True)
    directory = traces_dir(data_dir.absolute())
    files = sorted(directory.glob("*.jsonl"))
    if not files:
        console.print(f"No traces in {directory}: run `ticketing up --traces`.", markup=False)
        raise typer.Exit(1)
    found = [
        one
        for one in tracing.traces_of(tracing.read_spans(files))
        if len(one.services) >= min_services
        and (trace_id is None or one.trace_id.startswith(trace_id.lower()))
    ]
    for one in found[-last:]:
        for line in tracing.render(one):
            console.print(line, markup=False)
        console.print()


@app.command()
def routes() -> None:
    """Print the gateway's route table (path prefix → service), from the installed
    services' specs."""
    console = Console(highlight=False)
    for prefix, name in gateway_routes(installed_specs()):
        console.print(f"{prefix:<16} → {name}")


def main() -> None:
    app(prog_name="ticketing")


if __name__ == "__main__":
    main()
