"""The ``ticketing`` command (Typer): options and help text; the work is in ``stack.py``."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ticketing_devstack.instance import running_instance
from ticketing_devstack.processes import LogPrinter
from ticketing_devstack.registry import KNOWN_SERVICES, gateway_routes, installed_services
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
    return max(len(name) for name in (*INFRA_NAMES, *(s.name for s in KNOWN_SERVICES)))


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
    raw_logs: Annotated[
        bool,
        typer.Option("--raw-logs", help="Print the services' JSON log lines as they are."),
    ] = False,
) -> None:
    """Start everything, print the URL, and run until Ctrl-C or SIGTERM.

    Uses external servers instead of embedded ones when [bold]NATS_URL[/],
    [bold]DATABASE_URL[/] (an admin URL; one database per service is created on it)
    or [bold]REDIS_URL[/] is set. Payments talk to Stripe with [bold]STRIPE_SECRET_KEY[/]
    when it is set (and web gets [bold]STRIPE_PUBLISHABLE_KEY[/]); without it a local
    Stripe sandbox that understands Stripe's test cards stands in. Other environment
    variables reach the services. If any process exits, everything is stopped and the
    exit code is 1. Only one instance runs per data directory.
    """
    # pgserver's platformdirs warns about XDG_RUNTIME_DIR, which nothing here uses.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    services = installed_services()
    printer = LogPrinter(Console(highlight=False), prefix_width=_name_width(), raw=raw_logs)
    config = StackConfig(
        port=port,
        data_dir=data_dir.absolute(),
        expiration_window=expiration_window,
        ready_timeout=ready_timeout,
    )
    raise typer.Exit(run(config, services, printer))


@app.command()
def status(data_dir: DataDir = Path(".ticketing")) -> None:
    """Say whether Ticketing runs with this data directory, and which processes it started.

    Exit code 0 when it runs, 1 when it does not.
    """
    console = Console(highlight=False)
    info = running_instance(data_dir.absolute())
    if info is None:
        console.print(f"Ticketing is not running with {data_dir}.")
        raise typer.Exit(1)
    console.print(f"Ticketing is running at [bold]{info.url}[/] (PID {info.pid}).")
    width = _name_width()
    for child in info.children:
        state = "running" if child.is_running() else "gone"
        console.print(f"  {child.name:<{width}} PID {child.pid:<8} {state}")


@app.command()
def routes() -> None:
    """Print the gateway's route table (path prefix → service), as the registry defines it."""
    installed = {s.name for s in installed_services()}
    console = Console(highlight=False)
    for prefix, name in gateway_routes():
        note = "" if name in installed else "  [dim](not installed)[/]"
        console.print(f"{prefix:<16} → {name}{note}")


def main() -> None:
    app(prog_name="ticketing")


if __name__ == "__main__":
    main()
