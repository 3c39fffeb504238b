"""`ticketing up` with the real auth service: sign up, session, sign out through the
gateway; one instance per data directory; a restart keeps users and sessions; SIGTERM
leaves no process behind."""

from __future__ import annotations

import importlib.util
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from ticketing_common.embedded import free_port

pytestmark = pytest.mark.e2e

if importlib.util.find_spec("ticketing_auth") is None or (
    importlib.util.find_spec("ticketing_auth.app") is None
):
    pytest.skip("the auth service is not installed yet", allow_module_level=True)

PASSWORD = "correct horse battery"


def _up_argv(port: int, data_dir: Path) -> list[str]:
    ticketing = [sys.executable, "-m", "ticketing_devstack"]
    return [*ticketing, "up", "--port", str(port), "--data-dir", str(data_dir)]


class Stack:
    """A `ticketing up` process and the lines it printed."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            _up_argv(self.port, data_dir),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._pump, daemon=True).start()
        self.children: list[psutil.Process] = []

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())
            self._queue.put(line)
        self._queue.put(None)

    def wait_until_up(self, timeout: float = 180) -> None:
        expected = f"Ticketing is up at {self.url}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                break
            if expected in line:
                # Captured now, while every process it started runs.
                self.children = list(psutil.Process(self.proc.pid).children(recursive=True))
                return
        raise AssertionError(f"never printed {expected!r}:\n" + "\n".join(self.lines))

    def terminate(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def left_running(self) -> list[int]:
        alive = []
        for child in self.children:
            try:
                if child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
                    alive.append(child.pid)
            except psutil.NoSuchProcess:
                pass
        return alive


@pytest.fixture
def stacks(tmp_path: Path) -> Iterator[list[Stack]]:
    started: list[Stack] = []
    yield started
    for stack in started:
        if stack.proc.poll() is None:
            stack.proc.terminate()  # SIGTERM: the stack then stops its own children
            try:
                stack.proc.wait(60)
            except subprocess.TimeoutExpired:
                stack.proc.kill()
                stack.proc.wait(10)


def _up(stacks: list[Stack], data_dir: Path) -> Stack:
    stack = Stack(data_dir)
    stacks.append(stack)
    stack.wait_until_up()
    return stack


def test_signup_session_and_signout_through_the_gateway_then_sigterm_leaves_nothing(
    stacks: list[Stack], tmp_path: Path
) -> None:
    stack = _up(stacks, tmp_path / "data")
    email = f"{uuid.uuid4().hex}@example.com"

    with httpx.Client(base_url=stack.url) as client:
        signup = client.post("/api/users/signup", json={"email": email, "password": PASSWORD})
        current = client.get("/api/users/currentuser")
        signout = client.post("/api/users/signout")
        after = client.get("/api/users/currentuser")
    code = stack.terminate()

    assert signup.status_code == 201
    assert "session" in signup.cookies
    assert current.json()["currentUser"] == {"id": signup.json()["id"], "email": email}
    assert signout.status_code == 200
    assert "session" not in client.cookies
    assert after.json() == {"currentUser": None}
    assert code == 0
    assert len(stack.children) >= 3  # postgres, auth, gateway (and postgres' workers)
    assert stack.left_running() == []


def test_second_up_on_the_same_data_dir_is_refused_naming_the_running_one(
    stacks: list[Stack], tmp_path: Path
) -> None:
    first = _up(stacks, tmp_path / "data")

    second = subprocess.run(
        _up_argv(free_port(), tmp_path / "data"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert second.returncode != 0
    assert f"(PID {first.proc.pid}) at {first.url} is already running" in second.stdout
    assert httpx.get(first.url + "/api/users/currentuser").status_code == 200


def test_users_and_sessions_survive_a_restart_with_the_same_data_dir(
    stacks: list[Stack], tmp_path: Path
) -> None:
    email = f"{uuid.uuid4().hex}@example.com"
    first = _up(stacks, tmp_path / "data")
    signup = httpx.post(
        first.url + "/api/users/signup", json={"email": email, "password": PASSWORD}
    )
    assert first.terminate() == 0

    second = _up(stacks, tmp_path / "data")
    with httpx.Client(base_url=second.url, cookies=signup.cookies) as client:
        current = client.get("/api/users/currentuser")
        signin = client.post("/api/users/signin", json={"email": email, "password": PASSWORD})

    assert current.json()["currentUser"] == {"id": signup.json()["id"], "email": email}
    assert signin.status_code == 200
    assert second.terminate() == 0
    assert second.left_running() == []
