"""`ticketing up` end to end with a stand-in service (no database): environment, gateway,
readiness, crash handling and shutdown, all with real processes."""

from __future__ import annotations

import json
import os
import queue
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx
import psutil
import pytest

from ticketing_common.embedded import free_port
from ticketing_devstack.registry import Service
from ticketing_devstack.stack import (
    READY_LINE,
    Backends,
    StackConfig,
    load_jwt_key,
    postgres_url,
    service_environments,
)

FAKE_APP = """
import os, threading
from fastapi import FastAPI, Response

def create_app():
    app = FastAPI()
    mode = os.environ.get("FAKE_MODE", "ok")

    @app.get("/readyz")
    def readyz():
        if mode == "never-ready":
            return Response(status_code=503)
        if mode == "crash":
            threading.Timer(0.5, lambda: os._exit(3)).start()
        return {"ok": True}

    @app.get("/api/fake/env")
    def env():
        return dict(os.environ)

    return app
"""

RUNNER = """
import pathlib, sys
from rich.console import Console
from ticketing_devstack.processes import LogPrinter
from ticketing_devstack.registry import Service
from ticketing_devstack.stack import StackConfig, run

fake = Service(name="fake", package="ticketing_fakesvc", path_prefix="/api/fake")
config = StackConfig(
    port=int(sys.argv[1]), data_dir=pathlib.Path(sys.argv[2]), ready_timeout=float(sys.argv[3])
)
sys.exit(run(config, [fake], LogPrinter(Console(width=200))))
"""


@dataclass
class Running:
    proc: subprocess.Popen[str]
    url: str
    data_dir: Path
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)

    def wait_for(self, text: str, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if line is None:
                break
            if text in line:
                return line
        raise AssertionError(f"{text!r} not printed; output:\n" + "\n".join(self.lines))

    def output(self) -> str:
        return "\n".join(self.lines)


class StartStack(Protocol):
    def __call__(self, mode: str = "ok", ready_timeout: float = 30) -> Running: ...


@pytest.fixture
def start_stack(tmp_path: Path) -> Iterator[StartStack]:
    package = tmp_path / "src" / "ticketing_fakesvc"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "app.py").write_text(textwrap.dedent(FAKE_APP))
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    started: list[Running] = []

    def start(mode: str = "ok", ready_timeout: float = 30) -> Running:
        port = free_port()
        data_dir = tmp_path / "data"
        env = dict(
            os.environ,
            PYTHONPATH=str(tmp_path / "src"),
            FAKE_MODE=mode,
            STRIPE_SECRET_KEY="sk_test_passthrough",
        )
        env.pop("JWT_KEY", None)
        proc = subprocess.Popen(
            [sys.executable, str(runner), str(port), str(data_dir), str(ready_timeout)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        running = Running(proc, f"http://127.0.0.1:{port}", data_dir)

        def pump() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                running.lines.append(line.rstrip())
                running._queue.put(line.rstrip())
            running._queue.put(None)

        threading.Thread(target=pump, daemon=True).start()
        started.append(running)
        return running

    yield start
    for running in started:
        if running.proc.poll() is None:
            # SIGTERM so the stack stops what it started; SIGKILL would orphan its children.
            running.proc.terminate()
            try:
                running.proc.wait(30)
            except subprocess.TimeoutExpired:
                running.proc.kill()
                running.proc.wait(10)


def _descendants(pid: int) -> list[psutil.Process]:
    return list(psutil.Process(pid).children(recursive=True))


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
        except psutil.NoSuchProcess:
            pass
    return alive


def test_service_gets_its_environment_through_the_gateway_and_sigterm_stops_everything(
    start_stack: StartStack,
) -> None:
    stack = start_stack()
    stack.wait_for(READY_LINE.format(url=stack.url))
    children = _descendants(stack.proc.pid)
    names = {p.name() for p in children}

    env = httpx.get(stack.url + "/api/fake/env").json()
    stack.proc.send_signal(signal.SIGTERM)
    code = stack.proc.wait(30)

    assert env["ENVIRONMENT"] == "development"
    assert env["SERVICE_NAME"] == "fake"
    assert env["EXPIRATION_WINDOW_SECONDS"] == "900"
    assert env["STRIPE_SECRET_KEY"] == "sk_test_passthrough"
    assert env["JWT_KEY"] == (stack.data_dir / "jwt_key").read_text().strip()
    assert env["GATEWAY_URL"] == stack.url
    assert "DATABASE_URL" not in env
    assert code == 0
    assert "caddy" in names
    assert len(children) >= 2
    assert _alive(children) == []


def test_a_service_that_exits_stops_the_whole_stack_with_exit_code_1(
    start_stack: StartStack,
) -> None:
    stack = start_stack(mode="crash")
    stack.wait_for(READY_LINE.format(url=stack.url))
    children = _descendants(stack.proc.pid)

    code = stack.proc.wait(30)

    assert code == 1
    assert "fake exited with code 3; stopping everything." in stack.output()
    assert _alive(children) == []


def test_a_service_never_ready_fails_startup_naming_it_and_its_last_answer(
    start_stack: StartStack,
) -> None:
    stack = start_stack(mode="never-ready", ready_timeout=3)

    code = stack.proc.wait(60)

    assert code == 1
    assert "fake was not ready within 3s (/readyz answered 503)" in stack.output()
    assert READY_LINE.format(url=stack.url) not in stack.output()


def test_each_database_service_gets_its_own_database_and_others_none() -> None:
    auth = Service(name="auth", package="ticketing_auth", database=True, path_prefix="/api/users")
    web = Service(name="web", package="ticketing_web", path_prefix="/")
    config = StackConfig(
        port=8000,
        data_dir=Path("/unused"),
        expiration_window=60,
        environ={"DATABASE_URL": "postgresql+asyncpg://u:pw@db:5432/postgres?ssl=require"},
    )
    backends = Backends(
        nats_url="nats://127.0.0.1:4222",
        database_admin_url="postgresql+asyncpg://u:pw@db:5432/postgres?ssl=require",
        redis_url=None,
    )

    envs = service_environments(config, [auth, web], backends, {"auth": 1, "web": 2}, "k" * 32)

    assert envs["auth"]["DATABASE_URL"] == "postgresql://u:pw@db:5432/ticketing_auth?ssl=require"
    assert "DATABASE_URL" not in envs["web"]
    assert envs["web"]["NATS_URL"] == "nats://127.0.0.1:4222"
    assert "REDIS_URL" not in envs["web"]
    assert envs["auth"]["PORT"] == "1"
    assert envs["web"]["AUTH_SERVICE_URL"] == "http://127.0.0.1:1"
    assert envs["auth"]["EXPIRATION_WINDOW_SECONDS"] == "60"


def test_postgres_url_names_the_database_and_uses_the_plain_scheme() -> None:
    assert postgres_url("postgres://a@h:1/x", "ticketing_orders") == (
        "postgresql://a@h:1/ticketing_orders"
    )


def test_jwt_key_is_created_once_private_and_reused(tmp_path: Path) -> None:
    first = load_jwt_key(tmp_path)
    second = load_jwt_key(tmp_path)

    assert first == second
    assert len(first) >= 32
    assert stat.S_IMODE((tmp_path / "jwt_key").stat().st_mode) == 0o600


def test_lock_file_names_the_processes_of_the_running_stack(start_stack: StartStack) -> None:
    stack = start_stack()
    stack.wait_for(READY_LINE.format(url=stack.url))

    record = json.loads((stack.data_dir / "ticketing.lock").read_text())
    children = {c.pid for c in _descendants(stack.proc.pid) if c.ppid() == stack.proc.pid}
    stack.proc.send_signal(signal.SIGINT)
    code = stack.proc.wait(30)

    assert record["pid"] == stack.proc.pid
    assert record["url"] == stack.url
    assert {c["name"] for c in record["children"]} == {"fake", "gateway"}
    assert {c["pid"] for c in record["children"]} == children
    assert code == 0


def test_processes_left_by_a_killed_run_are_stopped_by_the_next_run(
    start_stack: StartStack,
) -> None:
    killed = start_stack()
    killed.wait_for(READY_LINE.format(url=killed.url))
    orphans = _descendants(killed.proc.pid)
    killed.proc.send_signal(signal.SIGKILL)
    killed.proc.wait(10)
    assert len(_alive(orphans)) == len(orphans)

    next_run = start_stack()
    next_run.wait_for(READY_LINE.format(url=next_run.url))

    assert _alive(orphans) == []
    assert "left running by a previous run that was killed" in next_run.output()
