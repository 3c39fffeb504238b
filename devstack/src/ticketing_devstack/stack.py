"""Orchestration of ``ticketing up``: the order things start and stop in.

Start: the instance lock, then the servers the installed services need (embedded,
or external ones named by ``NATS_URL``/``DATABASE_URL``/``REDIS_URL``), the
Stripe sandbox when a service charges cards and no ``STRIPE_SECRET_KEY`` is given,
the mail catcher (``mailcatcher.py``) when a service sends mail and no ``SMTP_HOST`` is
given, one database per service, migrations, the services; once every service answers
``/readyz``, the gateway (so it never routes to a service that is not ready yet).
Stop (Ctrl-C, SIGTERM, SIGHUP, ``ticketing down``, or a crash loop): services,
gateway, Stripe sandbox, mail catcher, servers, each by the PID we started, each wait
bounded.

Every child is a ``Unit`` (``healing.py``) around one ``ChildProcess``; what
environment each gets is decided in ``environment.py``. A child that exits while
the stack runs is restarted on the same port and data after a back-off while the
others keep serving; only a crash loop stops the stack, with exit code 1. Children
die with us even when we are killed, and a run stops what a killed run left, as a
safety net.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
from rich.table import Table
from rich.text import Text

from ticketing_common.embedded import (
    HOST,
    NATS,
    POSTGRES,
    REDIS,
    ChildProcess,
    EmbeddedServer,
    NatsServer,
    NotReadyError,
    RedisServer,
    ServerUrls,
    configured_or_embedded,
    create_database,
    free_port,
    listening,
    scripts_binary,
    wait_until_ready,
)
from ticketing_common.natsauth import DEFAULT_NAMESPACE, authorization_config, literal_passwords
from ticketing_common.spec import ServiceSpec
from ticketing_devstack import gateway, mailcatcher, migrate
from ticketing_devstack.credentials import Credentials, stored_secret
from ticketing_devstack.environment import (
    Addresses,
    Shared,
    Specs,
    charges_cards,
    mail_catcher_environment,
    needs_mail_catcher,
    needs_stripe_sandbox,
    sandbox_environment,
    sends_mail,
    service_environments,
)
from ticketing_devstack.healing import (
    READY,
    CrashLoopError,
    Healer,
    RestartPolicy,
    Role,
    Unit,
    nothing_to_prepare,
)
from ticketing_devstack.instance import (
    AlreadyRunningError,
    ChildRecord,
    InstanceLock,
    stop_leftovers,
)
from ticketing_devstack.processes import LOG_DIR, LogPrinter, Supervisor
from ticketing_devstack.registry import gateway_routes
from ticketing_devstack.signals import StopRequestedError, signals_raise_stop

READY_LINE = "Ticketing is up at {url}"
MIGRATION_TIMEOUT = 180.0
MIGRATIONS_NAME = "migrations"
"""The name the migration run's log and lock-file record go by."""
STRIPE_SANDBOX_NAME = "Stripe sandbox"
STRIPE_SANDBOX_PACKAGE = "ticketing_stripe_sandbox"
STRIPE_SANDBOX_HEALTH = "/_sandbox/health"
STRIPE_SANDBOX_TIMEOUT = 30.0
MAIL_CATCHER_NAME = "Mail catcher"
MAIL_CATCHER_TIMEOUT = 30.0
MAIL_LINE = "Mail: {url}"
SERVER_TIMEOUT = 30.0
GATEWAY_TIMEOUT = 15.0
INFRA_NAMES = (
    NATS.name,
    POSTGRES.name,
    REDIS.name,
    "gateway",
    STRIPE_SANDBOX_NAME,
    MAIL_CATCHER_NAME,
)
# Longer than the gateway keeps an idle connection to a service, so it is always the
# gateway that closes one: a service closing it first races with the gateway reusing it
# ("use of closed network connection" 502s).
SERVICE_KEEP_ALIVE_SECONDS = 2 * gateway.UPSTREAM_IDLE_TIMEOUT_SECONDS
TICK_SECONDS = 0.2
SERVER_START_ATTEMPTS = 3
# A server's "fast" shutdown may take longer than a service's.
SERVER_STOP_SECONDS = 15.0


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


def load_jwt_key(data_dir: Path) -> str:
    """The key sessions are signed with, created once per data dir so sessions survive a
    restart."""
    return stored_secret(data_dir / "jwt_key", lambda: secrets.token_urlsafe(48))


def failed_line(name: str) -> str:
    """What the migration run prints last when ``name``'s migrations fail."""
    return migrate.FAILED_LINE.format(name=name)


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # SO_REUSEADDR as Caddy does, so a port in TIME_WAIT does not look taken.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def answers_200(url: str) -> str | None:
    """A probe: None once ``url`` answers 200, else what it answered."""
    try:
        response = httpx.get(url, timeout=2.0)
    except httpx.HTTPError as exc:
        return type(exc).__name__
    if response.status_code == 200:
        return None
    return f"{urlsplit(url).path} answered {response.status_code}"


def without_credentials(address: str) -> str:
    """``address`` without a user or password (Redis' URL carries its password): what
    the lock file and ``ticketing status`` show."""
    parts = urlsplit(address)
    if not (parts.username or parts.password) or parts.hostname is None:
        return address
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = f"{host}:{parts.port}" if parts.port else host
    return parts._replace(netloc=netloc).geturl()


def service_argv(spec: ServiceSpec[Any], port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        spec.app_factory,
        "--host",
        HOST,
        "--port",
        str(port),
        "--no-access-log",
        # What uvicorn's "auto" picks when installed (uvicorn[standard]), stated so a
        # missing one fails at start instead of silently serving on the slower pure-Python
        # loop and parser.
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        # Bounded, so stopping never hangs on a client holding a connection open.
        "--timeout-graceful-shutdown",
        "5",
        "--timeout-keep-alive",
        str(SERVICE_KEEP_ALIVE_SECONDS),
    ]


def sandbox_argv(port: int, data_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        STRIPE_SANDBOX_PACKAGE,
        "--host",
        HOST,
        "--port",
        str(port),
        # Kept in the data dir like Stripe keeps it: charges outlive a restart, so
        # payments' recovery finds them (the sandbox creates the directory).
        "--state-file",
        str(data_dir / "stripe-sandbox" / "state.sqlite3"),
    ]


def mail_catcher_argv(smtp_port: int, http_port: int, data_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        mailcatcher.__name__,
        "--host",
        HOST,
        "--smtp-port",
        str(smtp_port),
        "--http-port",
        str(http_port),
        # Kept in the data dir: the mailbox outlives a restart of the catcher or the stack.
        "--store",
        str(data_dir / "mail"),
    ]


class Stack:
    """The running system. ``start()``, then ``heal_until_stopped()``; ``stop()`` always."""

    def __init__(
        self, config: StackConfig, specs: Specs, printer: LogPrinter, lock: InstanceLock
    ) -> None:
        self.config = config
        self.specs = list(specs)
        self.printer = printer
        self.lock = lock
        self.data_dir = config.data_dir
        self.supervisor = Supervisor(printer, self.data_dir / LOG_DIR)
        self.units: list[Unit] = []
        """Everything kept running, in start order."""
        self.migrations: list[ChildProcess] = []
        self.credentials = Credentials(self.data_dir)
        self.nats_passwords: dict[str, str] = {}
        """By user, once the stack's own NATS has users."""
        self.mail_url: str | None = None
        """The mailbox page, once the mail catcher runs."""
        self.smtp_port: int | None = None
        """The mail catcher's SMTP port, once it is started."""

    # -- start -------------------------------------------------------------------------

    def start(self) -> None:
        self._stop_leftovers()
        # Checked first so a taken port fails fast, not after the databases started.
        self._check_gateway_port()
        if not self.specs:
            self.printer.say(
                "No service is installed yet; the gateway answers 404 to every path.", "yellow"
            )
        # The sandbox and the catcher need no server: they start (Python imports, seconds
        # of CPU) while the servers start and the databases migrate, and are waited for
        # only before the services, which use them.
        helpers = [self._launch_stripe_sandbox(), self._launch_mail_catcher()]
        servers = self._start_servers()
        ports = {spec.name: free_port(self._gateway_port()) for spec in self.specs}
        sandbox, catcher = helpers
        addresses = Addresses(
            gateway_url=self.config.url,
            ports=ports,
            nats_url=servers.nats,
            database_admin_url=servers.postgres,
            redis_url=servers.redis,
            stripe_sandbox_url=sandbox.address if sandbox is not None else None,
            smtp_port=self.smtp_port,
            nats_passwords=self.nats_passwords,
        )
        jwt_key = self.config.environ.get("JWT_KEY") or load_jwt_key(self.data_dir)
        envs = service_environments(
            self.specs,
            self.config.environ,
            addresses,
            Shared(jwt_key=jwt_key, expiration_window=self.config.expiration_window),
        )
        if servers.postgres is not None:
            self._create_databases(servers.postgres)
            self._migrate(envs)
        started = [unit for unit in helpers if unit is not None]
        self._wait_ready(started, max(STRIPE_SANDBOX_TIMEOUT, MAIL_CATCHER_TIMEOUT))
        if catcher is not None:
            self.mail_url = catcher.address
        # Started together: no service waits for another (they meet through events).
        services = [self._service(spec, ports[spec.name], envs[spec.name]) for spec in self.specs]
        for unit in services:
            self._launch(unit)
        self._wait_ready(services, self.config.ready_timeout)
        self._start_gateway(ports)

    def _service(self, spec: ServiceSpec[Any], port: int, env: Mapping[str, str]) -> Unit:
        url = f"http://{HOST}:{port}"
        process = self.supervisor.child(
            spec.name,
            service_argv(spec, port),
            env=env,
            probe=partial(answers_200, f"{url}/readyz"),
        )
        return self._add(process, Role.SERVICE, url)

    def _stop_leftovers(self) -> None:
        for record in stop_leftovers(self.lock.previous):
            self.printer.say(
                f"Stopped {record.name} (PID {record.pid}), left running by a previous run "
                "that was killed.",
                "yellow",
            )

    def _add(
        self,
        process: ChildProcess,
        role: Role,
        address: str,
        prepare: Callable[[], None] = nothing_to_prepare,
    ) -> Unit:
        """Keep ``process`` running from now on; registered before it starts, so a
        failure or Ctrl-C half-way still stops it."""
        unit = Unit(process, role, self.supervisor.follow(process.name), address, prepare)
        self.units.append(unit)
        return unit

    def _launch(self, unit: Unit) -> None:
        self.printer.detail(f"Starting {unit.name}…")
        unit.launch()
        self._record()

    def _wait_ready(self, units: Sequence[Unit], timeout: float) -> None:
        by_process = {id(unit.process): unit for unit in units}
        try:
            wait_until_ready(
                [unit.process for unit in units],
                timeout,
                on_ready=lambda process: self._say_ready(by_process[id(process)]),
            )
        except NotReadyError as exc:
            time.sleep(0.2)  # let it write its last words
            raise StartupError(str(exc), by_process[id(exc.child)].last_lines()) from exc

    def _say_ready(self, unit: Unit) -> None:
        unit.state = READY
        unit.ready_since = time.monotonic()
        self._record()
        self.printer.say(f"{unit.name} is ready (PID {unit.pid}, {unit.address})", "")

    def _start_servers(self) -> ServerUrls:
        urls = configured_or_embedded(
            self.config.environ,
            self.data_dir,
            self._start_server,
            nats=any(spec.uses_nats for spec in self.specs),
            postgres=any(spec.needs_database for spec in self.specs),
            redis=any(spec.uses_redis for spec in self.specs),
            avoid_ports=self._gateway_port(),
        )
        for kind in urls.external:
            self.printer.say(f"Using the external {kind.name} server from {kind.variable}.")
        return urls

    def _secure(self, server: EmbeddedServer) -> None:
        """Passwords on the servers the stack runs, as in a cluster: each service is its
        own NATS user, allowed only the subjects it uses; Redis requires a password."""
        if isinstance(server, NatsServer):
            self.nats_passwords = self.credentials.nats_passwords(self.specs)
            namespace = self.config.environ.get("NATS_NAMESPACE") or DEFAULT_NAMESPACE
            server.config = authorization_config(
                self.specs, literal_passwords(self.nats_passwords), namespace
            )
        elif isinstance(server, RedisServer):
            server.password = self.credentials.redis_password()

    def _start_server(self, server: EmbeddedServer) -> str:
        self.printer.say(f"Starting {server.name} (data in {server.data_dir})…", "dim")
        self._secure(server)
        process = server.child(self.supervisor.log_path(server.name))
        unit = self._add(process, Role.SERVER, server.url, prepare=server.prepare)
        policy = RestartPolicy()
        for attempt in range(1, SERVER_START_ATTEMPTS + 1):
            try:
                self._launch(unit)
                wait_until_ready([process], SERVER_TIMEOUT)
                break
            except (NotReadyError, OSError, subprocess.SubprocessError) as exc:
                time.sleep(0.3)  # let the server write its last words
                if attempt == SERVER_START_ATTEMPTS:
                    raise StartupError(
                        f"{server.name} did not start: {exc}", unit.last_lines()
                    ) from exc
                # Right after a killed run, what the old server left may still be going
                # away (PostgreSQL's backends detach from its shared memory as they exit).
                process.stop()
                delay = policy.delay(attempt)
                self.printer.say(
                    f"{server.name} did not start ({exc}); retrying in {delay:.1f} s", "yellow"
                )
                time.sleep(delay)
        self._say_ready(unit)
        return server.url

    def _create_databases(self, admin_url: str) -> None:
        names = [spec.database_name for spec in self.specs if spec.needs_database]

        async def create_missing() -> list[str]:
            return [
                name for name in names if await create_database(admin_url, name, if_missing=True)
            ]

        try:
            created = asyncio.run(create_missing())
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            raise StartupError(f"Could not create the service databases: {exc}") from exc
        for name in created:
            self.printer.detail(f"Created database {name}.")

    def _launch_stripe_sandbox(self) -> Unit | None:
        """The sandbox, started (not yet ready) when it stands in for Stripe, else None."""
        environ = self.config.environ
        if not needs_stripe_sandbox(environ, self.specs):
            if charges_cards(self.specs):
                self.printer.say("Payments use Stripe with the key in STRIPE_SECRET_KEY.")
            return None
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
        port = free_port(self._gateway_port())
        url = f"http://{HOST}:{port}"
        process = self.supervisor.child(
            STRIPE_SANDBOX_NAME,
            sandbox_argv(port, self.data_dir),
            env=sandbox_environment(environ),
            probe=partial(answers_200, url + STRIPE_SANDBOX_HEALTH),
        )
        unit = self._add(process, Role.STRIPE_SANDBOX, url)
        self._launch(unit)
        return unit

    def _launch_mail_catcher(self) -> Unit | None:
        """The catcher, started (not yet ready) when it stands in for a mail server, else
        None; its SMTP port is then ``smtp_port``."""
        environ = self.config.environ
        if not needs_mail_catcher(environ, self.specs):
            if sends_mail(self.specs):
                self.printer.say(
                    f"Mail goes to the SMTP server in SMTP_HOST ({environ['SMTP_HOST']})."
                )
            return None
        smtp_port, http_port = free_port(self._gateway_port()), free_port(self._gateway_port())
        url = f"http://{HOST}:{http_port}"
        process = self.supervisor.child(
            MAIL_CATCHER_NAME,
            mail_catcher_argv(smtp_port, http_port, self.data_dir),
            env=mail_catcher_environment(environ),
            probe=partial(answers_200, url + mailcatcher.HEALTH_PATH),
        )
        unit = self._add(process, Role.MAIL_CATCHER, url)
        self._launch(unit)
        self.smtp_port = smtp_port
        return unit

    def _migrate(self, envs: Mapping[str, Mapping[str, str]]) -> None:
        """Migrate every service's database in one process (``migrate.py``: one import of
        SQLAlchemy and Alembic instead of one per service); its output goes to the
        ``migrations`` log."""
        specs = [spec for spec in self.specs if spec.needs_database]
        if not specs:
            return
        # The first service's environment, which has all a migration needs but the URL,
        # and every service's URL in a variable of its own.
        env = {key: value for key, value in envs[specs[0].name].items() if key != "DATABASE_URL"}
        env |= {migrate.url_variable(spec.name): envs[spec.name]["DATABASE_URL"] for spec in specs}
        argv = [sys.executable, "-m", migrate.__name__]
        argv += [migrate.argument(spec.name, spec.package) for spec in specs]
        run = self.supervisor.spawn(MIGRATIONS_NAME, argv, env=env)
        self.migrations.append(run)
        self._record()
        if not run.wait(MIGRATION_TIMEOUT):
            raise StartupError(
                f"Migrations did not finish within {MIGRATION_TIMEOUT:.0f}s",
                self.supervisor.settle(run.name),
            )
        tail = self.supervisor.settle(run.name)
        if (code := run.exit_code()) != 0:
            failed = [spec.name for spec in specs if failed_line(spec.name) in tail]
            which = f"of {failed[0]} " if failed else ""
            raise StartupError(f"Migrations {which}failed (exit code {code})", tail)
        for spec in specs:
            self.printer.detail(f"{spec.name}: database migrated to the latest revision.")
        self.migrations.remove(run)
        self._record()

    def _gateway_port(self) -> tuple[int]:
        """The gateway's port, bound only once every other process is up: until then the
        system would hand it out as free, so no other process may be given it."""
        return (self.config.port,)

    def _check_gateway_port(self) -> None:
        if not port_is_free(self.config.port):
            raise StartupError(
                f"Port {self.config.port} on {HOST} is in use; choose another with --port."
            )

    def _start_gateway(self, ports: Mapping[str, int]) -> None:
        self._check_gateway_port()
        caddy_dir = self.data_dir / "caddy"
        config = gateway.caddy_config(
            listen_port=self.config.port,
            routes=gateway_routes(self.specs),
            upstreams={spec.name: ports[spec.name] for spec in self.specs if spec.api_prefix},
            storage_dir=caddy_dir / "data",
        )
        path = gateway.write_caddy_config(caddy_dir, config)
        try:
            binary = scripts_binary("caddy")
        except FileNotFoundError as exc:
            raise StartupError(str(exc)) from exc
        process = self.supervisor.child(
            "gateway",
            gateway.caddy_argv(binary, path),
            env=gateway.caddy_env(caddy_dir),
            probe=partial(listening, self.config.port),
        )
        unit = self._add(process, Role.GATEWAY, self.config.url)
        self._launch(unit)
        self._wait_ready([unit], GATEWAY_TIMEOUT)

    def _record(self) -> None:
        """Write what we started, and how it fares, into the lock file (``instance.py``)."""
        records = [
            ChildRecord.of(
                unit.name,
                unit.pid or 0,
                unit.state,
                unit.restarts,
                without_credentials(unit.address),
            )
            for unit in self.units
        ]
        records += [
            ChildRecord.of(run.name, run.pid, "migrating")
            for run in self.migrations
            if run.pid is not None
        ]
        self.lock.record(records)

    # -- run ---------------------------------------------------------------------------

    def summary(self) -> Table:
        table = Table(title="Processes", title_justify="left", box=None, padding=(0, 2))
        table.add_column("name")
        table.add_column("pid", justify="right")
        table.add_column("address")
        for unit in self.units:
            table.add_row(unit.name, str(unit.pid), unit.address)
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
        while True:
            healer.tick()
            time.sleep(TICK_SECONDS)

    # -- stop --------------------------------------------------------------------------

    def stop(self) -> None:
        """Services (and any migration still running), then the gateway, then the Stripe
        sandbox (after payments, which may be refunding on its way out) and the mail
        catcher (after notifications, which may be sending), then the servers
        one by one, last started first. Every wait is bounded: the stop signal, a grace
        period, SIGKILL."""
        for role in (Role.SERVICE, Role.GATEWAY, Role.STRIPE_SANDBOX, Role.MAIL_CATCHER):
            processes = [unit.process for unit in self.units if unit.role == role]
            if role == Role.SERVICE:
                processes += self.migrations
            self.supervisor.stop(processes)
        for unit in reversed(self.units):
            if unit.role != Role.SERVER:
                continue
            try:
                self.supervisor.stop([unit.process], SERVER_STOP_SECONDS)
            except Exception as exc:  # keep stopping the others
                self.printer.error(f"Stopping {unit.name} failed: {exc}")
        self.supervisor.close()
        self.lock.record([])


def run(config: StackConfig, specs: Specs, printer: LogPrinter) -> int:
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
        stack = Stack(config, specs, printer, lock)
        code = 0
        try:
            names = ", ".join(s.name for s in specs) or "none"
            printer.say(f"Starting Ticketing (services: {names}) with data in {config.data_dir}")
            stack.start()
            if printer.verbose:
                printer.say(stack.summary())
            else:
                logs = config.data_dir / LOG_DIR
                printer.say(f"Logs are in {logs} (`ticketing logs NAME -f`).", "dim")
            printer.say(Text(READY_LINE.format(url=config.url), style="bold green"))
            if stack.mail_url is not None:
                printer.say(Text(MAIL_LINE.format(url=stack.mail_url), style="green"))
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
