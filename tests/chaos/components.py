"""The processes of a running ``ticketing up``, found from its data directory.

``ticketing up`` records every process it starts (name, PID, start time) in its
instance lock file. The file is read as plain text, never locked: taking even a
shared lock could make a ``ticketing up`` starting at that instant believe another
one runs. Ports change on every (re)start, so a component's address is looked up
from the sockets its live process listens on.
"""

from __future__ import annotations

import contextlib
import socket
import time
from pathlib import Path

import psutil

from ticketing_common.embedded import HOST, with_database
from ticketing_devstack.credentials import Credentials
from ticketing_devstack.instance import LOCK_FILE, InstanceInfo
from ticketing_devstack.registry import gateway_routes, installed_specs
from ticketing_devstack.stack import STRIPE_SANDBOX_NAME, STRIPE_SANDBOX_PACKAGE

UP = "ticketing up"
"""The name the chaos suite gives ``ticketing up`` itself among the components."""
SPECS = installed_specs()
SERVICES = tuple(spec.name for spec in SPECS)
SERVERS = ("nats", "postgres", "redis", STRIPE_SANDBOX_NAME)
LOCK_READS = 5
LOCK_REREAD_PAUSE = 0.02
PATH_SERVICES = tuple(gateway_routes(SPECS))


def instance(data_dir: Path) -> InstanceInfo | None:
    """What the lock file records now; None while no instance has written it.

    ``ticketing up`` rewrites the file in place (truncate, then write), so a read
    between the two finds it empty or cut short: read again a few times before
    concluding that nothing runs, or every component would seem to have died."""
    for _ in range(LOCK_READS):
        try:
            text = (data_dir / LOCK_FILE).read_text()
        except FileNotFoundError:
            return None
        info = InstanceInfo.from_json(text)
        if info is not None:
            return info
        time.sleep(LOCK_REREAD_PAUSE)
    return None


def live_children(data_dir: Path) -> dict[str, int]:
    """The PID of each component whose process runs, by name.

    From the lock file; a component whose recorded process has gone is looked for
    among the running instance's descendants too, in case the record lags behind a
    restart made by ``ticketing up`` itself.
    """
    info = instance(data_dir)
    if info is None:
        return {}
    found = {child.name: child.pid for child in info.children if child.is_running()}
    if len(found) < len({child.name for child in info.children}):
        for name, pid in _descendants(info.pid).items():
            found.setdefault(name, pid)
    return found


def _descendants(pid: int) -> dict[str, int]:
    """``ticketing up``'s running descendants, named by what their command line runs."""
    named: dict[str, int] = {}
    with contextlib.suppress(psutil.Error):
        for proc in psutil.Process(pid).children(recursive=True):
            with contextlib.suppress(psutil.Error):
                name = _component(proc.cmdline())
                if name is not None and proc.status() != psutil.STATUS_ZOMBIE:
                    named.setdefault(name, proc.pid)
    return named


def _component(argv: list[str]) -> str | None:
    if not argv:
        return None
    line = " ".join(argv)
    program = argv[0].rsplit("/", 1)[-1]
    by_program = {"nats-server": "nats", "postgres": "postgres", "caddy": "gateway"}
    if program in by_program:  # not postgres' own workers, which rename themselves
        return by_program[program]
    if "redis-server" in program:
        return "redis"
    if STRIPE_SANDBOX_PACKAGE in line:
        return STRIPE_SANDBOX_NAME
    for spec in SPECS:
        if spec.app_factory in line:
            return spec.name
    return None


def pid_of(data_dir: Path, name: str) -> int | None:
    return live_children(data_dir).get(name)


def listening_port(pid: int) -> int | None:
    """The lowest TCP port ``pid`` listens on at 127.0.0.1 (Caddy also has an admin port)."""
    with contextlib.suppress(psutil.Error):
        ports: list[int] = [
            conn.laddr.port
            for conn in psutil.Process(pid).net_connections("tcp")
            if conn.status == psutil.CONN_LISTEN and conn.laddr.ip == HOST
        ]
        if ports:
            return min(ports)
    return None


def port_of(data_dir: Path, name: str) -> int | None:
    pid = pid_of(data_dir, name)
    return listening_port(pid) if pid is not None else None


def url_of(data_dir: Path, name: str) -> str | None:
    """``http://…`` of an HTTP component (a service, the sandbox); None while it is down."""
    port = port_of(data_dir, name)
    return f"http://{HOST}:{port}" if port is not None else None


def postgres_admin_url(data_dir: Path) -> str | None:
    port = port_of(data_dir, "postgres")
    return None if port is None else f"postgresql://postgres@{HOST}:{port}/postgres"


def database_url(data_dir: Path, service: str) -> str | None:
    """The URL of one service's own database on the data dir's PostgreSQL."""
    admin = postgres_admin_url(data_dir)
    found = [spec for spec in SPECS if spec.name == service]
    if admin is None or not found:
        return None
    return with_database(admin, found[0].database_name)


def nats_url(data_dir: Path) -> str | None:
    """With the operators' credentials: the stack's NATS has a user per service."""
    port = port_of(data_dir, "nats")
    return None if port is None else Credentials(data_dir).admin_nats_url(f"nats://{HOST}:{port}")


def accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def service_of_path(path: str) -> str:
    """The service the gateway routes ``path`` to (web takes every other path)."""
    for prefix, name in PATH_SERVICES:
        if prefix != "/" and (path == prefix or path.startswith(prefix + "/")):
            return name
        if prefix != "/" and path.startswith(prefix + "?"):
            return name
    return next(name for prefix, name in PATH_SERVICES if prefix == "/")
