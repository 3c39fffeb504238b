"""`ticketing up` end to end with a stand-in service (no database): environment, gateway,
readiness, crash handling and shutdown, all with real processes."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import smtplib
import stat
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

import httpx
import psutil
import pytest

from ticketing_common.embedded import free_port, with_database
from ticketing_common.settings import BusSettings, EventServiceSettings, ServiceSettings
from ticketing_common.spec import CATCH_ALL, ServiceSpec
from ticketing_devstack.environment import (
    Addresses,
    Shared,
    Specs,
    needs_mail_catcher,
    needs_stripe_sandbox,
    service_environments,
)
from ticketing_devstack.instance import LOCK_FILE, ChildRecord, InstanceInfo
from ticketing_devstack.stack import (
    MAIL_CATCHER_NAME,
    MAIL_LINE,
    READY_LINE,
    STRIPE_SANDBOX_NAME,
    load_jwt_key,
    without_credentials,
)
from ticketing_stripe_sandbox.testing import StripeApi, stripe_client

FAKE_APP = """
import json, os, pathlib, threading
from fastapi import FastAPI, Response

def create_app():
    app = FastAPI()
    mode = os.environ.get("FAKE_MODE", "ok")
    name = os.environ["SERVICE_NAME"]
    print("a banner line of", name, flush=True)
    # "crash": the first process gets ready, then dies; every later one dies starting.
    # The mark is the test's own (a shared temporary directory keeps marks of earlier
    # runs, and a port can come round again).
    crashed = pathlib.Path(os.environ["FAKE_STATE_DIR"], f"fake-crashed-{os.environ['PORT']}")
    if mode == "crash" and crashed.exists():
        os._exit(3)

    @app.get("/readyz")
    def readyz():
        if mode == "never-ready":
            return Response(status_code=503)
        if mode == "crash":
            crashed.touch()
            threading.Timer(0.5, lambda: os._exit(3)).start()
        return {"ok": True}

    @app.get(f"/api/{name}/env")
    def env():
        return dict(os.environ)

    @app.get(f"/api/{name}/say/{{word}}")
    def say(word: str):
        print(json.dumps({"level": "info", "message": word}), flush=True)
        return {"said": word}

    return app
"""

PASSTHROUGH_KEY = "sk_test_passthrough"

RUNNER = """
import os, pathlib, sys
from rich.console import Console
from ticketing_devstack.processes import LogPrinter
from ticketing_devstack.instance import LOCK_FILE, ChildRecord, InstanceInfo
from ticketing_common.settings import ServiceSettings
from ticketing_common.spec import ServiceSpec
from ticketing_devstack.stack import StackConfig, run

class MailingSettings(ServiceSettings):
    SMTP_HOST: str = "127.0.0.1"

# Specs of a stand-in service: no database, no broker, so no server starts.
specs = [
    ServiceSpec(
        name=name,
        package="ticketing_fakesvc",
        title=name,
        settings=MailingSettings if os.environ.get("FAKE_SENDS_MAIL") == "1" else ServiceSettings,
        api_prefix=f"/api/{name}",
        stripe_secret=name == "fake" and os.environ.get("FAKE_CHARGES_CARDS") == "1",
    )
    for name in os.environ.get("FAKE_SERVICES", "fake").split(",")
]
config = StackConfig(
    port=int(sys.argv[1]), data_dir=pathlib.Path(sys.argv[2]), ready_timeout=float(sys.argv[3])
)
printer = LogPrinter(Console(width=200), verbose=os.environ.get("FAKE_VERBOSE") == "1")
sys.exit(run(config, specs, printer))
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
    def __call__(
        self,
        mode: str = "ok",
        ready_timeout: float = 30,
        *,
        charges_cards: bool = False,
        stripe_secret_key: str | None = PASSTHROUGH_KEY,
        services: str = "fake",
        verbose: bool = True,
        sends_mail: bool = False,
    ) -> Running: ...


@pytest.fixture
def start_stack(tmp_path: Path) -> Iterator[StartStack]:
    package = tmp_path / "src" / "ticketing_fakesvc"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "app.py").write_text(textwrap.dedent(FAKE_APP))
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    started: list[Running] = []

    def start(
        mode: str = "ok",
        ready_timeout: float = 30,
        *,
        charges_cards: bool = False,
        stripe_secret_key: str | None = PASSTHROUGH_KEY,
        services: str = "fake",
        verbose: bool = True,
        sends_mail: bool = False,
    ) -> Running:
        port = free_port()
        data_dir = tmp_path / "data"
        env = dict(
            os.environ,
            PYTHONPATH=str(tmp_path / "src"),
            FAKE_MODE=mode,
            FAKE_CHARGES_CARDS="1" if charges_cards else "0",
            FAKE_SERVICES=services,
            FAKE_VERBOSE="1" if verbose else "0",
            FAKE_SENDS_MAIL="1" if sends_mail else "0",
            FAKE_STATE_DIR=str(tmp_path),
        )
        env.pop("JWT_KEY", None)
        env.pop("SMTP_HOST", None)
        env.pop("STRIPE_SECRET_KEY", None)
        if stripe_secret_key is not None:
            env["STRIPE_SECRET_KEY"] = stripe_secret_key
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
    # Only a service that charges cards gets the Stripe secret key.
    assert "STRIPE_SECRET_KEY" not in env
    assert env["JWT_KEY"] == (stack.data_dir / "jwt_key").read_text().strip()
    assert env["GATEWAY_URL"] == stack.url
    assert "DATABASE_URL" not in env
    assert code == 0
    assert "caddy" in names
    assert len(children) >= 2
    assert _alive(children) == []


def test_a_service_that_keeps_crashing_is_restarted_then_stops_the_stack_with_exit_code_1(
    start_stack: StartStack,
) -> None:
    stack = start_stack(mode="crash")
    stack.wait_for(READY_LINE.format(url=stack.url))
    children = _descendants(stack.proc.pid)

    code = stack.proc.wait(90)

    assert code == 1
    output = stack.output()
    assert "fake exited with code 3; restarting in 0.5 s (restart 1)" in output
    assert "fake exited with code 3; restarting in 1.0 s (restart 2)" in output
    assert "fake is ready again" not in output
    assert "fake crashed 5 times in a row without getting ready; stopping everything." in output
    assert _alive(children) == []


def test_a_service_never_ready_fails_startup_naming_it_and_its_last_answer(
    start_stack: StartStack,
) -> None:
    stack = start_stack(mode="never-ready", ready_timeout=15)

    code = stack.proc.wait(60)

    assert code == 1
    assert "fake was not ready within 15s (/readyz answered 503)" in stack.output()
    assert READY_LINE.format(url=stack.url) not in stack.output()


def _spec(
    name: str,
    settings: type[ServiceSettings],
    prefix: str | None,
    *,
    stripe_secret: bool = False,
    stripe_publishable: bool = False,
) -> ServiceSpec[ServiceSettings]:
    return ServiceSpec(
        name=name,
        package=f"ticketing_{name}",
        title=name,
        settings=settings,
        api_prefix=prefix,
        stripe_secret=stripe_secret,
        stripe_publishable=stripe_publishable,
    )


AUTH = _spec("auth", EventServiceSettings, "/api/users")
WEB = _spec("web", BusSettings, CATCH_ALL, stripe_publishable=True)
PAYMENTS = _spec("payments", EventServiceSettings, "/api/payments", stripe_secret=True)
PORTS = {"payments": 1, "web": 2, "auth": 3}


def test_each_database_service_gets_its_own_database_and_others_none() -> None:
    admin = "postgresql+asyncpg://u:pw@db:5432/postgres?ssl=require"
    addresses = Addresses(
        gateway_url="http://127.0.0.1:8000",
        ports={"auth": 1, "web": 2},
        nats_url="nats://127.0.0.1:4222",
        database_admin_url=admin,
    )

    envs = service_environments(
        [AUTH, WEB],
        {"DATABASE_URL": admin},
        addresses,
        Shared(jwt_key="k" * 32, expiration_window=60),
    )

    assert envs["auth"]["DATABASE_URL"] == "postgresql://u:pw@db:5432/ticketing_auth?ssl=require"
    assert "DATABASE_URL" not in envs["web"]
    assert envs["web"]["NATS_URL"] == "nats://127.0.0.1:4222"
    assert "REDIS_URL" not in envs["web"]
    assert envs["auth"]["PORT"] == "1"
    assert envs["auth"]["SERVICE_NAME"] == "auth"
    assert envs["auth"]["GATEWAY_URL"] == "http://127.0.0.1:8000"
    # Services reach each other through events and the gateway, never by address.
    assert not [name for name in envs["web"] if name.endswith("_SERVICE_URL")]
    assert envs["auth"]["EXPIRATION_WINDOW_SECONDS"] == "60"


def test_with_database_names_the_database_and_uses_the_plain_scheme() -> None:
    assert with_database("postgres://a@h:1/x", "ticketing_orders") == (
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


def test_processes_recorded_by_a_killed_run_are_stopped_by_the_next_run(
    start_stack: StartStack, tmp_path: Path
) -> None:
    # A process that did not die with its parent (which the parent-death signal
    # prevents on Linux) is still stopped, by the PID the killed run recorded.
    leftover = subprocess.Popen(["sleep", "60"])
    record = ChildRecord.of("fake", leftover.pid)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / LOCK_FILE).write_text(InstanceInfo(2**22 + 1, "x", (record,)).to_json())

    next_run = start_stack()
    next_run.wait_for(READY_LINE.format(url=next_run.url))

    assert leftover.wait(10) is not None
    assert f"Stopped fake (PID {leftover.pid}), left running by a previous run" in (
        next_run.output()
    )


def test_without_a_stripe_key_the_sandbox_runs_for_the_service_that_charges_cards(
    start_stack: StartStack,
) -> None:
    stack = start_stack(charges_cards=True, stripe_secret_key=None)
    stack.wait_for(READY_LINE.format(url=stack.url))
    children = _descendants(stack.proc.pid)
    record = json.loads((stack.data_dir / "ticketing.lock").read_text())

    env = httpx.get(stack.url + "/api/fake/env").json()
    client = stripe_client(StripeApi(env["STRIPE_API_BASE"], env["STRIPE_SECRET_KEY"], True))
    intent = client.v1.payment_intents.create(
        {
            "amount": 2050,
            "currency": "usd",
            "allowed_payment_method_types": ["card"],
            "payment_method": "pm_card_visa",
            "confirm": True,
        }
    )
    stack.proc.send_signal(signal.SIGTERM)
    code = stack.proc.wait(30)

    assert env["STRIPE_SECRET_KEY"] == "sk_test_sandbox"
    assert env["STRIPE_API_BASE"].startswith("http://127.0.0.1:")
    assert intent.status == "succeeded"
    assert STRIPE_SANDBOX_NAME in {c["name"] for c in record["children"]}
    assert STRIPE_SANDBOX_NAME in stack.output()
    assert code == 0
    assert _alive(children) == []


def test_with_a_stripe_key_no_sandbox_runs_and_the_key_passes_unchanged(
    start_stack: StartStack,
) -> None:
    stack = start_stack(charges_cards=True, stripe_secret_key="sk_test_real_account")
    stack.wait_for(READY_LINE.format(url=stack.url))
    record = json.loads((stack.data_dir / "ticketing.lock").read_text())

    env = httpx.get(stack.url + "/api/fake/env").json()

    assert env["STRIPE_SECRET_KEY"] == "sk_test_real_account"
    assert "STRIPE_API_BASE" not in env
    assert {c["name"] for c in record["children"]} == {"fake", "gateway"}


def _envs(environ: dict[str, str], sandbox_url: str | None) -> dict[str, dict[str, str]]:
    addresses = Addresses(
        gateway_url="http://127.0.0.1:8000", ports=PORTS, stripe_sandbox_url=sandbox_url
    )
    return service_environments([PAYMENTS, WEB, AUTH], environ, addresses, Shared(jwt_key="k" * 32))


@pytest.mark.parametrize(
    ("environ", "services", "expected"),
    [
        ({}, [PAYMENTS, WEB], True),
        ({"STRIPE_SECRET_KEY": "  "}, [PAYMENTS], True),
        ({"STRIPE_SECRET_KEY": "sk_test_x"}, [PAYMENTS, WEB], False),
        ({}, [WEB, AUTH], False),
    ],
)
def test_the_sandbox_is_needed_only_for_payments_without_a_secret_key(
    environ: dict[str, str], services: Specs, expected: bool
) -> None:
    assert needs_stripe_sandbox(environ, services) is expected


def test_with_the_sandbox_payments_get_its_key_and_address_and_web_no_publishable_key() -> None:
    envs = _envs({"STRIPE_PUBLISHABLE_KEY": "pk_test_x"}, "http://127.0.0.1:4242")

    assert envs["payments"]["STRIPE_SECRET_KEY"] == "sk_test_sandbox"
    assert envs["payments"]["STRIPE_API_BASE"] == "http://127.0.0.1:4242"
    assert "STRIPE_PUBLISHABLE_KEY" not in envs["web"]
    assert not any(k.startswith("STRIPE_") for k in envs["auth"])


def test_with_a_secret_key_it_reaches_payments_unchanged_and_the_publishable_key_web() -> None:
    envs = _envs(
        {"STRIPE_SECRET_KEY": "sk_test_real", "STRIPE_PUBLISHABLE_KEY": "pk_test_real"}, None
    )

    assert envs["payments"]["STRIPE_SECRET_KEY"] == "sk_test_real"
    assert "STRIPE_API_BASE" not in envs["payments"]
    assert "STRIPE_PUBLISHABLE_KEY" not in envs["payments"]
    assert envs["web"]["STRIPE_PUBLISHABLE_KEY"] == "pk_test_real"
    assert "STRIPE_SECRET_KEY" not in envs["web"]
    assert not any(k.startswith("STRIPE_") for k in envs["auth"])


def test_an_api_base_given_with_the_key_is_kept_for_payments() -> None:
    envs = _envs(
        {"STRIPE_SECRET_KEY": "sk_test_real", "STRIPE_API_BASE": "http://127.0.0.1:12111"}, None
    )

    assert envs["payments"]["STRIPE_API_BASE"] == "http://127.0.0.1:12111"
    assert "STRIPE_API_BASE" not in envs["web"]


def _recorded(stack: Running) -> dict[str, dict[str, object]]:
    record = json.loads((stack.data_dir / LOCK_FILE).read_text())
    return {child["name"]: child for child in record["children"]}


def _ticketing(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ticketing_devstack", *args],
        env=dict(os.environ, COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _until(what: str, condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout}s")
        time.sleep(0.1)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_a_killed_service_is_restarted_on_its_port_while_the_others_keep_answering(
    start_stack: StartStack,
) -> None:
    stack = start_stack(services="fake,other")
    stack.wait_for(READY_LINE.format(url=stack.url))
    before = _recorded(stack)["fake"]
    port = httpx.get(stack.url + "/api/fake/env").json()["PORT"]
    other_answers: list[int] = []

    os.kill(int(str(before["pid"])), signal.SIGKILL)
    deadline = time.monotonic() + 60
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        # Requests to the other service, through the gateway, all the while.
        while time.monotonic() < deadline:
            other_answers.append(client.get("/api/other/env").status_code)
            if "fake is ready again" in stack.output() and len(other_answers) >= 20:
                break
        after = client.get("/api/fake/env")
    status = json.loads(_ticketing("status", "--json", "--data-dir", str(stack.data_dir)).stdout)

    assert "fake exited with code -9; restarting in 0.5 s (restart 1)" in stack.output()
    assert "fake is ready again" in stack.output()
    assert after.status_code == 200
    assert after.json()["PORT"] == port
    assert set(other_answers) == {200}
    fake = next(p for p in status["processes"] if p["name"] == "fake")
    assert fake["restarts"] == 1
    assert fake["state"] == "ready"
    assert fake["pid"] not in (None, before["pid"])


@pytest.mark.parametrize("name", ["gateway", STRIPE_SANDBOX_NAME])
def test_a_killed_gateway_or_stripe_sandbox_is_restarted_and_serves_again(
    start_stack: StartStack, name: str
) -> None:
    stack = start_stack(charges_cards=True, stripe_secret_key=None)
    stack.wait_for(READY_LINE.format(url=stack.url))
    sandbox_url = httpx.get(stack.url + "/api/fake/env").json()["STRIPE_API_BASE"]

    os.kill(int(str(_recorded(stack)[name]["pid"])), signal.SIGKILL)
    stack.wait_for(f"{name} is ready again")

    assert f"{name} exited with code -9; restarting in 0.5 s (restart 1)" in stack.output()
    assert _answers(stack.url + "/api/fake/env")
    assert _answers(sandbox_url + "/_sandbox/health")
    assert stack.proc.poll() is None


def test_after_ticketing_up_is_killed_no_process_it_started_is_left(
    start_stack: StartStack,
) -> None:
    stack = start_stack(charges_cards=True, stripe_secret_key=None, services="fake,other")
    stack.wait_for(READY_LINE.format(url=stack.url))
    children = _descendants(stack.proc.pid)

    stack.proc.send_signal(signal.SIGKILL)
    stack.proc.wait(10)

    assert len(children) >= 4
    _until("every child of the killed run exited", lambda: _alive(children) == [])


@pytest.mark.parametrize(
    "signals", [[signal.SIGTERM] * 3, [signal.SIGINT, signal.SIGTERM, signal.SIGINT]]
)
def test_repeated_signals_stop_everything_in_bounded_time(
    start_stack: StartStack, signals: list[signal.Signals]
) -> None:
    stack = start_stack(services="fake,other", verbose=True)
    stack.wait_for(READY_LINE.format(url=stack.url))
    children = _descendants(stack.proc.pid)
    loading = threading.Event()

    def load() -> None:
        # Requests whose log lines keep the printer busy while the signals arrive.
        with httpx.Client(base_url=stack.url, timeout=5) as client:
            while not loading.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    client.get("/api/fake/say/busy")

    loaders = [threading.Thread(target=load) for _ in range(4)]
    for loader in loaders:
        loader.start()
    time.sleep(1)
    for signum in signals:
        stack.proc.send_signal(signum)
        time.sleep(0.01)
    try:
        code = stack.proc.wait(60)
    finally:
        loading.set()
        for loader in loaders:
            loader.join(10)

    assert code == 0
    assert "Stopped." in stack.output()
    assert _alive(children) == []


def test_down_stops_the_stack_of_a_data_dir_from_another_process(
    start_stack: StartStack,
) -> None:
    stack = start_stack()
    stack.wait_for(READY_LINE.format(url=stack.url))
    children = _descendants(stack.proc.pid)

    result = _ticketing("down", "--data-dir", str(stack.data_dir))
    again = _ticketing("down", "--data-dir", str(stack.data_dir))
    status = _ticketing("status", "--json", "--data-dir", str(stack.data_dir))

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Stopping Ticketing at {stack.url} (PID {stack.proc.pid})" in result.stdout
    assert "Stopped in" in result.stdout
    assert stack.proc.wait(5) == 0
    assert _alive(children) == []
    assert again.returncode == 0
    assert "not running" in again.stdout
    assert status.returncode == 1
    assert json.loads(status.stdout)["running"] is False


def test_by_default_one_line_per_process_then_the_url_and_logs_go_to_the_data_dir(
    start_stack: StartStack,
) -> None:
    stack = start_stack(services="fake,other", verbose=False)
    stack.wait_for(READY_LINE.format(url=stack.url))
    httpx.get(stack.url + "/api/fake/say/hello")
    follow = [sys.executable, "-m", "ticketing_devstack", "logs", "fake", "-f", "-n", "1"]
    follower = subprocess.Popen(
        [*follow, "--raw-logs", "--data-dir", str(stack.data_dir)],
        stdout=subprocess.PIPE,
        text=True,
    )
    followed: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert follower.stdout is not None
        for line in follower.stdout:
            followed.put(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        first = followed.get(timeout=30)
        httpx.get(stack.url + "/api/fake/say/again")
        second = followed.get(timeout=30)
    finally:
        follower.terminate()
        follower.wait(10)
    one = _ticketing("logs", "fake", "--data-dir", str(stack.data_dir))
    every = _ticketing("logs", "--data-dir", str(stack.data_dir))
    unknown = _ticketing("logs", "nope", "--data-dir", str(stack.data_dir))

    assert "a banner line of fake" not in stack.output()
    assert "fake is ready (PID" in stack.output()
    assert "other is ready (PID" in stack.output()
    assert "gateway is ready (PID" in stack.output()
    assert len(stack.lines) <= 8, stack.output()
    assert "a banner line of fake" in (stack.data_dir / "logs" / "fake.log").read_text()
    assert "a banner line of fake" in one.stdout.splitlines()
    assert "INFO  hello" in one.stdout.splitlines()
    assert "hello" in first
    assert "again" in second
    assert any(
        line.startswith("other ") and "a banner line of other" in line
        for line in every.stdout.splitlines()
    )
    assert unknown.returncode == 1
    assert "No log named 'nope'" in unknown.stderr


def _mail(subject: str, to: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Ticketing <tickets@ticketing.test>"
    message["To"] = to
    message["Subject"] = subject
    message.set_content("Plain words.")
    message.add_alternative('<p>Rich <b>words</b><script>alert("no")</script></p>', subtype="html")
    message.add_attachment(
        b"%PDF-1.4 a ticket", maintype="application", subtype="pdf", filename="ticket.pdf"
    )
    return message


def test_without_an_smtp_host_the_mail_catcher_keeps_every_mail_across_restarts_and_shows_it(
    start_stack: StartStack,
) -> None:
    stack = start_stack(sends_mail=True)
    stack.wait_for(READY_LINE.format(url=stack.url))
    mail_url = stack.wait_for(MAIL_LINE.format(url="http://127.0.0.1:")).split("Mail: ")[1]
    env = httpx.get(stack.url + "/api/fake/env").json()
    assert env["SMTP_HOST"] == "127.0.0.1"
    assert env["SITE_URL"] == stack.url
    with smtplib.SMTP(env["SMTP_HOST"], int(env["SMTP_PORT"]), timeout=10) as smtp:
        smtp.send_message(_mail("First", "buyer@example.test"))

    # The catcher restarts like every child, and its mailbox survives (kept in the data dir).
    os.kill(int(str(_recorded(stack)[MAIL_CATCHER_NAME]["pid"])), signal.SIGKILL)
    stack.wait_for(f"{MAIL_CATCHER_NAME} is ready again")
    with smtplib.SMTP(env["SMTP_HOST"], int(env["SMTP_PORT"]), timeout=10) as smtp:
        smtp.send_message(_mail("Second", "seller@example.test"))

    listed = httpx.get(mail_url + "/api/messages").json()
    assert [(m["subject"], m["to"]) for m in listed] == [
        ("Second", ["seller@example.test"]),
        ("First", ["buyer@example.test"]),
    ]
    assert listed[0]["from"] == "Ticketing <tickets@ticketing.test>"
    detail = httpx.get(f"{mail_url}/api/messages/{listed[1]['id']}").json()
    assert detail["text"].strip() == "Plain words."
    assert "<b>words</b>" in detail["html"]
    [pdf] = detail["parts"]
    assert (pdf["filename"], pdf["contentType"]) == ("ticket.pdf", "application/pdf")
    assert httpx.get(mail_url + pdf["url"]).content == b"%PDF-1.4 a ticket"
    index = httpx.get(mail_url + "/").text
    assert index.index("Second") < index.index("First")  # newest first
    page = httpx.get(f"{mail_url}/messages/{listed[1]['id']}").text
    # The mail's HTML only inside a sandboxed frame: its script never runs on the page.
    assert "<iframe sandbox srcdoc=" in page
    assert "<script>" not in page
    assert 'href="/api/messages/' in page
    status = json.loads(_ticketing("status", "--json", "--data-dir", str(stack.data_dir)).stdout)
    catcher = next(p for p in status["processes"] if p["name"] == MAIL_CATCHER_NAME)
    assert (catcher["address"], catcher["restarts"]) == (mail_url, 1)


class _Mailing(EventServiceSettings):
    SMTP_HOST: str = "127.0.0.1"


NOTIFICATIONS = _spec("notifications", _Mailing, None)


@pytest.mark.parametrize(
    ("environ", "services", "expected"),
    [
        ({}, [NOTIFICATIONS, WEB], True),
        ({"SMTP_HOST": " "}, [NOTIFICATIONS], True),
        ({"SMTP_HOST": "smtp.example.com"}, [NOTIFICATIONS], False),
        ({}, [WEB, AUTH], False),
    ],
)
def test_the_mail_catcher_is_needed_only_for_a_service_that_mails_without_an_smtp_host(
    environ: dict[str, str], services: Specs, expected: bool
) -> None:
    assert needs_mail_catcher(environ, services) is expected


def test_with_the_catcher_services_get_its_address_and_links_point_to_the_gateway() -> None:
    addresses = Addresses(
        gateway_url="http://127.0.0.1:8000", ports={"notifications": 1}, smtp_port=2525
    )
    shared = Shared(jwt_key="k" * 32)
    [env] = service_environments([NOTIFICATIONS], {}, addresses, shared).values()
    assert (env["SMTP_HOST"], env["SMTP_PORT"], env["SMTP_STARTTLS"]) == (
        "127.0.0.1",
        "2525",
        "false",
    )
    assert env["SITE_URL"] == "http://127.0.0.1:8000"

    # A real server and a public address given by the caller reach the service unchanged.
    given = {"SMTP_HOST": "smtp.example.com", "SITE_URL": "https://tickets.example.com"}
    without = Addresses(gateway_url="http://127.0.0.1:8000", ports={"notifications": 1})
    [env] = service_environments([NOTIFICATIONS], given, without, shared).values()
    assert env["SMTP_HOST"] == "smtp.example.com"
    assert env["SITE_URL"] == "https://tickets.example.com"


def test_the_lock_file_and_status_show_addresses_without_credentials() -> None:
    assert without_credentials("redis://:s3cret@127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert without_credentials("postgresql://postgres@127.0.0.1:5432/postgres") == (
        "postgresql://127.0.0.1:5432/postgres"
    )
    assert without_credentials("http://127.0.0.1:8025") == "http://127.0.0.1:8025"
