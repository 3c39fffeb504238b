"""Orchestration of ``ticketing up``: the order things start and stop in.

Start: the instance lock, then the servers the installed services need (embedded,
or external ones named by ``NATS_URL``/``DATABASE_URL``/``REDIS_URL``), the
Stripe sandbox when payments is installed and no ``STRIPE_SECRET_KEY`` is given,
one database per service, migrations, the services; once every service answers
``/readyz``, the gateway (so it never routes to a service that is not ready yet).
Stop (Ctrl-C, SIGTERM, SIGHUP, ``ticketing down``, or a crash loop): services,
gateway, Stripe sandbox, servers, each by the PID we started, each wait bounded.

A child that exits while the stack runs is restarted on the same port and data
after a back-off (``healing.py``) while the others keep serving; only a crash loop
stops the stack, with exit code 1. Children die with us even when we are killed
(``die_with_parent``), and a run stops what a killed run left, as a safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
from rich.table import Table
from rich.text import Text

from ticketing_common.embedded import (
    HOST,
    NatsServer,
    PostgresServer,
    RedisServer,
    free_port,
    scripts_binary,
    wait_for_port,
)
from ticketing_devstack import gateway
from ticketing_devstack.healing import (
    READY,
    STARTING,
    CrashLoopError,
    Healer,
    ProcessUnit,
    RestartPolicy,
    Server,
    ServerUnit,
    Unit,
)
from ticketing_devstack.instance import (
    AlreadyRunningError,
    ChildRecord,
    InstanceLock,
    stop_leftovers,
)
from ticketing_devstack.processes import LOG_DIR, LogPrinter, Supervisor
from ticketing_devstack.registry import Service, gateway_routes

READY_LINE = "Ticketing is up at {url}"
MIGRATION_TIMEOUT = 180.0
STRIPE_SANDBOX_NAME = "Stripe sandbox"
STRIPE_SANDBOX_PACKAGE = "ticketing_stripe_sandbox"
STRIPE_SANDBOX_HEALTH = "/_sandbox/health"
STRIPE_SANDBOX_TIMEOUT = 30.0
# The sandbox takes any test-mode secret key (each is an account of its own there).
SANDBOX_SECRET_KEY = "sk_test_sandbox"  # noqa: S105 - not a secret: the sandbox's test key
# Given to the services that need them only (see stripe_environment), never to all.
STRIPE_VARIABLES = ("STRIPE_SECRET_KEY", "STRIPE_API_BASE", "STRIPE_PUBLISHABLE_KEY")
INFRA_NAMES = ("nats", "postgres", "redis", "gateway", STRIPE_SANDBOX_NAME)
# Longer than the gateway keeps an idle connection to a service, so it is always the
# gateway that closes one: a service closing it first races with the gateway reusing it
# ("use of closed network connection" 502s).
SERVICE_KEEP_ALIVE_SECONDS = 2 * gateway.UPSTREAM_IDLE_TIMEOUT_SECONDS
TICK_SECONDS = 0.2
SERVER_START_ATTEMPTS = 3


@dataclass(frozen=True)
class StackConfig:
    port: int
    data_dir: Path
    expiration_window: int = 900
    ready_timeout: float = 90.0
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"


class StartupError(Exception):
    """The stack could not start; ``tail`` is the output of the process at fault."""

    def __init__(self, message: str, tail: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.tail = list(tail)


class StopRequestedError(BaseException):
    """Raised in the main thread by SIGINT/SIGTERM/SIGHUP; a BaseException like
    KeyboardInterrupt so no ``except Exception`` swallows it."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass(frozen=True)
class Backends:
    """Where the services find NATS, PostgreSQL (admin URL) and Redis; None = not needed."""

    nats_url: str | None = None
    database_admin_url: str | None = None
    redis_url: str | None = None


def postgres_url(url: str, database: str) -> str:
    """``url`` with plain ``postgresql://`` scheme (what asyncpg accepts; services convert
    it themselves) and ``database`` as its database."""
    parts = urlsplit(url)
    return urlunsplit(("postgresql", parts.netloc, f"/{database}", parts.query, ""))


def load_jwt_key(data_dir: Path) -> str:
    """The key sessions are signed with, created once per data dir so sessions survive a
    restart."""
    path = data_dir / "jwt_key"
    with contextlib.suppress(FileNotFoundError):
        key = path.read_text().strip()
        if key:
            return key
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(key + "\n")
    return key


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR as Caddy does, so a port in TIME_WAIT does not look taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def needs_stripe_sandbox(environ: Mapping[str, str], services: Sequence[Service]) -> bool:
    """The sandbox stands in for Stripe when a service charges cards and no secret key is
    given; with a key, Stripe itself is used and no sandbox starts."""
    has_key = bool(environ.get("STRIPE_SECRET_KEY", "").strip())
    return not has_key and any(service.stripe_secret for service in services)


def stripe_environment(
    service: Service, environ: Mapping[str, str], sandbox_url: str | None
) -> dict[str, str]:
    """The Stripe settings of one service: the secret key only where cards are charged
    (the sandbox's key and address when it runs, else the caller's key unchanged), the
    publishable key only where cards are tokenised. With the sandbox no publishable key
    is given: Stripe.js would make tokens that only Stripe itself can charge."""
    env: dict[str, str] = {}
    if service.stripe_secret:
        if sandbox_url is not None:
            env["STRIPE_SECRET_KEY"] = SANDBOX_SECRET_KEY
            env["STRIPE_API_BASE"] = sandbox_url
        else:
            env.update((name, environ[name]) for name in STRIPE_VARIABLES[:2] if environ.get(name))
    publishable = environ.get("STRIPE_PUBLISHABLE_KEY")
    if service.stripe_publishable and publishable and sandbox_url is None:
        env["STRIPE_PUBLISHABLE_KEY"] = publishable
    return env


def service_environments(
    config: StackConfig,
    services: Sequence[Service],
    backends: Backends,
    ports: Mapping[str, int],
    jwt_key: str,
    *,
    stripe_sandbox_url: str | None = None,
) -> dict[str, dict[str, str]]:
    """Each service's environment: ours (``config.environ``) plus what the stack decided."""
    common = dict(config.environ)
    # The admin URL is not a service's database; each service gets its own below.
    common.pop("DATABASE_URL", None)
    for name in STRIPE_VARIABLES:
        common.pop(name, None)
    common.update(
        ENVIRONMENT="development",
        JWT_KEY=jwt_key,
        EXPIRATION_WINDOW_SECONDS=str(config.expiration_window),
        GATEWAY_URL=config.url,
        PYTHONUNBUFFERED="1",
    )
    if backends.nats_url:
        common["NATS_URL"] = backends.nats_url
    if backends.redis_url:
        common["REDIS_URL"] = backends.redis_url
    envs = {}
    for service in services:
        env = dict(common, SERVICE_NAME=service.name, PORT=str(ports[service.name]))
        if service.path_prefix is not None:
            # Caddy replaces a client's X-Forwarded-For with the real address, so services
            # behind it may use the header (e.g. auth's per-client sign-in throttle).
            env["TRUST_PROXY_HEADERS"] = "true"
        if service.database and backends.database_admin_url:
            env["DATABASE_URL"] = postgres_url(backends.database_admin_url, service.database_name)
        env.update(stripe_environment(service, config.environ, stripe_sandbox_url))
        envs[service.name] = env
    return envs


async def _create_databases(admin_url: str, names: Sequence[str]) -> list[str]:
    """Create each missing database; return those created."""
    created = []
    conn = await asyncpg.connect(postgres_url(admin_url, "postgres"), timeout=15)
    try:
        for name in names:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if exists:
                continue
            # CREATE DATABASE takes no parameters; names come from the registry, not input.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f'CREATE DATABASE "{name}"')
                created.append(name)
    finally:
        await conn.close()
    return created


class Stack:
    """The running system. ``start()``, then ``heal_until_stopped()``; ``stop()`` always."""

    def __init__(
        self,
        config: StackConfig,
        services: Sequence[Service],
        printer: LogPrinter,
        lock: InstanceLock,
    ) -> None:
        self.config = config
        self.services = list(services)
        self.printer = printer
        self.lock = lock
        self.data_dir = config.data_dir
        self.supervisor = Supervisor(printer, self.data_dir / LOG_DIR)
        self.servers: list[ServerUnit] = []
        self.running: dict[str, ProcessUnit] = {}
        self.ports: dict[str, int] = {}
        self.gateway: ProcessUnit | None = None
        self.stripe_sandbox: ProcessUnit | None = None
        self.stripe_sandbox_url: str | None = None

    @property
    def units(self) -> list[Unit]:
        """Everything kept running, in start order."""
        units: list[Unit] = [*self.servers]
        if self.stripe_sandbox is not None:
            units.append(self.stripe_sandbox)
        units += self.running.values()
        if self.gateway is not None:
            units.append(self.gateway)
        return units

    # -- start -------------------------------------------------------------------------

    def start(self) -> None:
        self._stop_leftovers()
        # Checked first so a taken port fails fast, not after the databases started.
        self._check_gateway_port()
        if not self.services:
            self.printer.say(
                "No service is installed yet; the gateway answers 404 to every path.", "yellow"
            )
        backends = self._start_backends()
        self._start_stripe_sandbox()
        envs = self._service_envs(backends)
        if backends.database_admin_url is not None:
            self._create_databases(backends.database_admin_url)
            self._migrate(envs)
        for service in self.services:
            self._start_service(service, envs[service.name])
        self._wait_ready()
        self._start_gateway()

    def _stop_leftovers(self) -> None:
        for record in stop_leftovers(self.lock.previous):
            self.printer.say(
                f"Stopped {record.name} (PID {record.pid}), left running by a previous run "
                "that was killed.",
                "yellow",
            )

    def _start_backends(self) -> Backends:
        env = self.config.environ
        need_db = any(s.database for s in self.services)
        need_nats = any(s.uses_nats for s in self.services)
        need_redis = any(s.uses_redis for s in self.services)
        nats_url = env.get("NATS_URL") or (
            self._start_server(NatsServer("nats", free_port(), self.data_dir / "nats"))
            if need_nats
            else None
        )
        database_url = env.get("DATABASE_URL") or (
            self._start_server(PostgresServer("postgres", free_port(), self.data_dir / "postgres"))
            if need_db
            else None
        )
        redis_url = env.get("REDIS_URL") or (
            self._start_server(RedisServer("redis", free_port(), self.data_dir / "redis"))
            if need_redis
            else None
        )
        for name, url, variable in (
            ("NATS", nats_url, "NATS_URL"),
            ("PostgreSQL", database_url, "DATABASE_URL"),
            ("Redis", redis_url, "REDIS_URL"),
        ):
            if url is not None and env.get(variable):
                self.printer.say(f"Using external {name} from {variable}.")
        return Backends(nats_url, database_url, redis_url)

    def _start_server(self, server: Server) -> str:
        self.printer.say(f"Starting {server.name} (data in {server.data_dir})…", "dim")
        log = server.data_dir / f"{server.name}.log"
        self._link_log(server.name, log)
        self.supervisor.follow(server.name, log)
        # Registered before start() so a failure or Ctrl-C half-way still stops it.
        unit = ServerUnit(server.name, STARTING, server=server, supervisor=self.supervisor)
        self.servers.append(unit)
        policy = RestartPolicy()
        for attempt in range(1, SERVER_START_ATTEMPTS + 1):
            try:
                server.start()
                break
            except (RuntimeError, TimeoutError, OSError, subprocess.SubprocessError) as exc:
                time.sleep(0.3)  # let the server write its last words
                if attempt == SERVER_START_ATTEMPTS:
                    raise StartupError(
                        f"{server.name} did not start: {exc}", unit.last_lines()
                    ) from exc
                # Right after a killed run, what the old server left may still be going
                # away (PostgreSQL's backends detach from its shared memory as they exit).
                server.stop()
                delay = policy.delay(attempt)
                self.printer.say(
                    f"{server.name} did not start ({exc}); retrying in {delay:.1f} s", "yellow"
                )
                time.sleep(delay)
        self._say_ready(unit, server.url)
        return server.url

    def _link_log(self, name: str, log: Path) -> None:
        """Servers write their own log file; ``logs/<name>.log`` points at it, so every
        process's log is found in one place."""
        link = self.supervisor.log_path(name)
        link.parent.mkdir(parents=True, exist_ok=True)
        target = os.path.relpath(log, link.parent)
        if link.is_symlink() and os.readlink(link) == target:
            return
        link.unlink(missing_ok=True)
        link.symlink_to(target)

    def _say_ready(self, unit: Unit, address: str) -> None:
        unit.state = READY
        unit.ready_since = time.monotonic()
        self._record()
        self.printer.say(f"{unit.name} is ready (PID {unit.pid}, {address})", "")

    def _create_databases(self, admin_url: str) -> None:
        names = [s.database_name for s in self.services if s.database]
        try:
            created = asyncio.run(_create_databases(admin_url, names))
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            raise StartupError(f"Could not create the service databases: {exc}") from exc
        for name in created:
            self.printer.detail(f"Created database {name}.")

    def _service_envs(self, backends: Backends) -> dict[str, dict[str, str]]:
        self.ports = {service.name: free_port() for service in self.services}
        jwt_key = self.config.environ.get("JWT_KEY") or load_jwt_key(self.data_dir)
        return service_environments(
            self.config,
            self.services,
            backends,
            self.ports,
            jwt_key,
            stripe_sandbox_url=self.stripe_sandbox_url,
        )

    def _start_stripe_sandbox(self) -> None:
        environ = self.config.environ
        if not needs_stripe_sandbox(environ, self.services):
            if any(s.stripe_secret for s in self.services):
                self.printer.say("Payments use Stripe with the key in STRIPE_SECRET_KEY.")
            return
        if importlib.util.find_spec(STRIPE_SANDBOX_PACKAGE) is None:
            raise StartupError(
                "STRIPE_SECRET_KEY is not set and the Stripe sandbox (ticketing-stripe-sandbox) "
                "is not installed: set a test key or install the sandbox."
            )
        self.printer.say(
            "No STRIPE_SECRET_KEY: payments use the local Stripe sandbox (Stripe's test cards).",
            "yellow",
        )
        if environ.get("STRIPE_PUBLISHABLE_KEY"):
            self.printer.say(
                "STRIPE_PUBLISHABLE_KEY is not given to web without STRIPE_SECRET_KEY: the "
                "sandbox cannot charge tokens made by Stripe.js.",
                "yellow",
            )
        port = free_port()
        argv = [sys.executable, "-m", STRIPE_SANDBOX_PACKAGE, "--host", HOST, "--port", str(port)]
        # Kept in the data dir like Stripe keeps it: charges outlive a restart, so
        # payments' recovery finds them (the sandbox creates the directory).
        argv += ["--state-file", str(self.data_dir / "stripe-sandbox" / "state.sqlite3")]
        env = {k: v for k, v in environ.items() if k not in STRIPE_VARIABLES}
        env["PYTHONUNBUFFERED"] = "1"
        url = f"http://{HOST}:{port}"
        self.stripe_sandbox = self._launch(
            STRIPE_SANDBOX_NAME, argv, env, port=port, ready_url=url + STRIPE_SANDBOX_HEALTH
        )
        self._record()
        self._wait_for_stripe_sandbox(self.stripe_sandbox, url)
        self.stripe_sandbox_url = url
        self._say_ready(self.stripe_sandbox, url)

    def _launch(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        port: int,
        ready_url: str | None = None,
    ) -> ProcessUnit:
        """Start a process the stack keeps running (restarted with the same argv)."""
        self.printer.detail(f"Starting {name}…")
        unit = ProcessUnit(
            name,
            STARTING,
            supervisor=self.supervisor,
            argv=list(argv),
            env=dict(env),
            port=port,
            ready_url=ready_url,
        )
        unit.launch()
        return unit

    def _wait_for_stripe_sandbox(self, unit: ProcessUnit, url: str) -> None:
        deadline = time.monotonic() + STRIPE_SANDBOX_TIMEOUT
        last = "no answer yet"
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if (code := unit.exit_code()) is not None:
                    raise StartupError(
                        f"{STRIPE_SANDBOX_NAME} exited with code {code} before it was ready",
                        unit.last_lines(),
                    )
                try:
                    response = client.get(url + STRIPE_SANDBOX_HEALTH)
                except httpx.HTTPError as exc:
                    last = type(exc).__name__
                else:
                    if response.status_code == 200:
                        return
                    last = f"{STRIPE_SANDBOX_HEALTH} answered {response.status_code}"
                time.sleep(0.1)
        raise StartupError(
            f"{STRIPE_SANDBOX_NAME} was not ready within {STRIPE_SANDBOX_TIMEOUT:.0f}s ({last})",
            unit.last_lines(),
        )

    def _migrate(self, envs: Mapping[str, Mapping[str, str]]) -> None:
        """Run every service's migrations at once; each has its own database. Their
        output goes to the service's log."""
        runs = [
            self.supervisor.spawn(
                service.name,
                [sys.executable, "-m", "ticketing_common.migrate", service.package],
                env=envs[service.name],
            )
            for service in self.services
            if service.database
        ]
        self._record()
        deadline = time.monotonic() + MIGRATION_TIMEOUT
        for run in runs:
            while run.popen.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            code = run.popen.poll()
            if code is None:
                raise StartupError(
                    f"Migrations of {run.name} did not finish within {MIGRATION_TIMEOUT:.0f}s",
                    self.supervisor.settle(run.name),
                )
            if code != 0:
                raise StartupError(
                    f"Migrations of {run.name} failed (exit code {code})",
                    self.supervisor.settle(run.name),
                )
            self.printer.detail(f"{run.name}: database migrated to the latest revision.")
            self.supervisor.forget(run)
        self._record()

    def _start_service(self, service: Service, env: Mapping[str, str]) -> None:
        port = self.ports[service.name]
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            service.app_factory,
            "--host",
            HOST,
            "--port",
            str(port),
            "--no-access-log",
            # Bounded, so stopping never hangs on a client holding a connection open.
            "--timeout-graceful-shutdown",
            "5",
            "--timeout-keep-alive",
            str(SERVICE_KEEP_ALIVE_SECONDS),
        ]
        self.running[service.name] = self._launch(
            service.name, argv, env, port=port, ready_url=f"http://{HOST}:{port}/readyz"
        )
        self._record()

    def _check_gateway_port(self) -> None:
        if not port_is_free(self.config.port):
            raise StartupError(
                f"Port {self.config.port} on {HOST} is in use; choose another with --port."
            )

    def _start_gateway(self) -> None:
        self._check_gateway_port()
        caddy_dir = self.data_dir / "caddy"
        upstreams = {s.name: self.ports[s.name] for s in self.services if s.path_prefix}
        config = gateway.caddy_config(
            listen_port=self.config.port,
            routes=gateway_routes(self.services),
            upstreams=upstreams,
            storage_dir=caddy_dir / "data",
        )
        path = gateway.write_caddy_config(caddy_dir, config)
        try:
            binary = scripts_binary("caddy")
        except FileNotFoundError as exc:
            raise StartupError(str(exc)) from exc
        self.gateway = self._launch(
            "gateway",
            gateway.caddy_argv(binary, path),
            gateway.caddy_env(caddy_dir),
            port=self.config.port,
        )
        self._record()
        assert self.gateway.process is not None
        try:
            wait_for_port(self.config.port, self.gateway.process.popen, "gateway", timeout=15)
        except (RuntimeError, TimeoutError) as exc:
            time.sleep(0.2)
            raise StartupError(str(exc), self.gateway.last_lines()) from exc
        self._say_ready(self.gateway, self.config.url)

    def _wait_ready(self) -> None:
        waiting = dict(self.running)
        last: dict[str, str] = dict.fromkeys(waiting, "no answer yet")
        deadline = time.monotonic() + self.config.ready_timeout
        with httpx.Client(timeout=2.0) as client:
            while waiting:
                for name, unit in list(waiting.items()):
                    if (code := unit.exit_code()) is not None:
                        raise StartupError(
                            f"{name} exited with code {code} before it was ready",
                            unit.last_lines(),
                        )
                    url = f"http://{HOST}:{self.ports[name]}/readyz"
                    try:
                        response = client.get(url)
                    except httpx.HTTPError as exc:
                        last[name] = f"{type(exc).__name__}"
                        continue
                    if response.status_code == 200:
                        del waiting[name]
                        self._say_ready(unit, f"http://{HOST}:{self.ports[name]}")
                    else:
                        last[name] = f"/readyz answered {response.status_code}"
                if not waiting:
                    break
                if time.monotonic() > deadline:
                    name = next(iter(waiting))
                    raise StartupError(
                        f"{name} was not ready within {self.config.ready_timeout:.0f}s "
                        f"({last[name]})",
                        waiting[name].last_lines(),
                    )
                time.sleep(0.2)

    def _record(self) -> None:
        """Write what we started, and how it fares, into the lock file (``instance.py``)."""
        records = [
            ChildRecord.of(unit.name, unit.pid or 0, unit.state, unit.restarts)
            for unit in self.units
        ]
        kept = {unit.pid for unit in self.units}
        records += [
            ChildRecord.of(p.name, p.pid, "migrating")
            for p in self.supervisor.processes
            if p.pid not in kept
        ]
        self.lock.record(records)

    # -- run ---------------------------------------------------------------------------

    def summary(self) -> Table:
        table = Table(title="Processes", title_justify="left", box=None, padding=(0, 2))
        table.add_column("name")
        table.add_column("pid", justify="right")
        table.add_column("address")
        for server in self.servers:
            assert server.server is not None
            table.add_row(server.name, str(server.pid), server.server.url)
        if self.stripe_sandbox is not None and self.stripe_sandbox_url is not None:
            table.add_row(
                STRIPE_SANDBOX_NAME, str(self.stripe_sandbox.pid), self.stripe_sandbox_url
            )
        for name, service in self.running.items():
            table.add_row(name, str(service.pid), f"http://{HOST}:{self.ports[name]}")
        if self.gateway is not None:
            table.add_row("gateway", str(self.gateway.pid), self.config.url)
        return table

    def heal_until_stopped(self) -> None:
        """Restart whatever exits, until a signal raises ``StopRequestedError`` or a unit
        crash-loops (``CrashLoopError``). Runs in the main thread: children are spawned
        from it, and their parent-death signal is tied to the thread that spawned them."""
        healer = Healer(
            self.units,
            self.printer,
            ready_timeout=self.config.ready_timeout,
            on_change=self._record,
        )
        try:
            while True:
                healer.tick()
                time.sleep(TICK_SECONDS)
        finally:
            healer.close()

    # -- stop --------------------------------------------------------------------------

    def stop(self) -> None:
        """Services (and any migration still running), then the gateway, then the Stripe
        sandbox (after payments, which may be refunding on its way out), then the servers.
        Every wait is bounded: SIGTERM, a grace period, SIGKILL."""
        last = [u.process for u in (self.gateway, self.stripe_sandbox) if u is not None]
        others = [p for p in self.supervisor.processes if p not in last]
        self.supervisor.stop(others)
        for process in last:
            if process is not None:
                self.supervisor.stop([process])
        for unit in reversed(self.servers):
            try:
                assert unit.server is not None
                unit.server.stop()
            except Exception as exc:  # keep stopping the others
                self.printer.error(f"Stopping {unit.name} failed: {exc}")
        self.supervisor.close()
        self.lock.record([])


@dataclass
class StopState:
    """What the signal handler knows: whether stopping has begun, and how many signals
    arrived (the handler only counts; it never prints nor takes a lock)."""

    stopping: bool = False
    signals: int = 0


@contextlib.contextmanager
def signals_raise_stop() -> Iterator[StopState]:
    """While inside, the first SIGINT/SIGTERM/SIGHUP raises ``StopRequestedError`` in the
    main thread; later ones are only counted, so cleanup is never cut short. Set
    ``stopping`` before cleaning up for any other reason.

    The handler must not print: it runs between two bytecodes of the main thread, which
    may be holding the printer's lock at that moment (a signal forwarded twice, by
    ``uv run`` and by the terminal, hung the stop that way)."""
    state = StopState()

    def handler(signum: int, frame: FrameType | None) -> None:
        state.signals += 1
        if state.stopping:
            return
        state.stopping = True
        raise StopRequestedError(signum)

    watched = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, handler) for sig in watched}
    try:
        yield state
    finally:
        for sig, old in previous.items():
            # Once stopped, a late duplicate of the signal that stopped us must not turn
            # a clean exit into a death by signal: ignored until the process exits.
            signal.signal(sig, signal.SIG_IGN if state.stopping else old)


def run(config: StackConfig, services: Sequence[Service], printer: LogPrinter) -> int:
    """``ticketing up``: start everything, keep it running until told to stop (or until a
    process crash-loops), stop everything. Returns the process exit code."""
    try:
        lock = InstanceLock.acquire(config.data_dir, config.url)
    except AlreadyRunningError as exc:
        printer.error(str(exc))
        if exc.info is not None and exc.info.url != config.url:
            printer.say(f"Open {exc.info.url}, or stop PID {exc.info.pid} first.")
        return 1
    with lock, signals_raise_stop() as state:
        stack = Stack(config, services, printer, lock)
        code = 0
        try:
            names = ", ".join(s.name for s in services) or "none"
            printer.say(f"Starting Ticketing (services: {names}) with data in {config.data_dir}")
            stack.start()
            if printer.verbose:
                printer.say(stack.summary())
            else:
                logs = config.data_dir / LOG_DIR
                printer.say(f"Logs are in {logs} (`ticketing logs NAME -f`).", "dim")
            printer.say(Text(READY_LINE.format(url=config.url), style="bold green"))
            stack.heal_until_stopped()
        except CrashLoopError as exc:
            state.stopping = True
            printer.error(str(exc), exc.tail)
            code = 1
        except StartupError as exc:
            state.stopping = True
            printer.error(f"Ticketing could not start: {exc}", exc.tail)
            code = 1
        except StopRequestedError as exc:
            printer.say(f"Received {exc}; stopping…")
        finally:
            state.stopping = True
            stack.stop()
            printer.say("Stopped." if code == 0 else "Stopped after an error.")
    return code
