"""`ticketing up` with the real auth service: sign up, session, sign out through the
gateway; one instance per data directory; a restart keeps users and sessions; SIGTERM
leaves no process behind."""

from __future__ import annotations

import importlib.util
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from ticketing_common.embedded import free_port

from .conftest import Stack, up_argv

pytestmark = pytest.mark.e2e

if importlib.util.find_spec("ticketing_auth") is None or (
    importlib.util.find_spec("ticketing_auth.app") is None
):
    pytest.skip("the auth service is not installed yet", allow_module_level=True)

PASSWORD = "correct horse battery"


@pytest.fixture
def stacks(tmp_path: Path) -> Iterator[list[Stack]]:
    started: list[Stack] = []
    yield started
    for stack in started:
        stack.stop()


def _up(stacks: list[Stack], data_dir: Path) -> Stack:
    stack = Stack(data_dir)
    stacks.append(stack)
    stack.wait_until_up()
    return stack


def test_one_data_dir_through_its_life_sessions_one_instance_sigterm_and_a_restart(
    stacks: list[Stack], tmp_path: Path
) -> None:
    """One test, two stacks on one data dir (each start of the whole system costs
    tens of seconds): sign-up, session and sign-out through the gateway; a second
    `up` on the same data dir is refused; SIGTERM leaves no process behind; a restart
    keeps users and sessions."""
    data_dir = tmp_path / "data"
    leaver, stayer = (f"{uuid.uuid4().hex}@example.com" for _ in range(2))
    first = _up(stacks, data_dir)

    second = subprocess.run(
        up_argv(free_port(), data_dir), capture_output=True, text=True, timeout=60, check=False
    )
    with httpx.Client(base_url=first.url) as client:
        signup = client.post("/api/users/signup", json={"email": leaver, "password": PASSWORD})
        current = client.get("/api/users/currentuser")
        signout = client.post("/api/users/signout")
        after = client.get("/api/users/currentuser")
    kept = httpx.post(first.url + "/api/users/signup", json={"email": stayer, "password": PASSWORD})
    code = first.terminate()

    assert second.returncode != 0
    assert f"(PID {first.proc.pid}) at {first.url} is already running" in second.stdout
    assert signup.status_code == 201
    assert "session" in signup.cookies
    assert current.json()["currentUser"] == {"id": signup.json()["id"], "email": leaver}
    assert signout.status_code == 200
    assert "session" not in client.cookies
    assert after.json() == {"currentUser": None}
    assert kept.status_code == 201
    assert code == 0
    assert len(first.children) >= 3  # postgres, auth, gateway (and postgres' workers)
    assert first.left_running() == []

    again = _up(stacks, data_dir)
    with httpx.Client(base_url=again.url, cookies=kept.cookies) as client:
        still = client.get("/api/users/currentuser")
        signin = client.post("/api/users/signin", json={"email": stayer, "password": PASSWORD})

    assert still.json()["currentUser"] == {"id": kept.json()["id"], "email": stayer}
    assert signin.status_code == 200
    assert again.terminate() == 0
    assert again.left_running() == []
