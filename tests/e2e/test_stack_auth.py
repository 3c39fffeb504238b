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
        up_argv(free_port(), tmp_path / "data"),
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
