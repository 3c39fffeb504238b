"""`ticketing up` with the real auth service: sign up, session, sign out through the
gateway; sign-up and sign-in limits hold through the gateway; one instance per data
directory; a restart keeps users and sessions; SIGTERM
leaves no process behind; the whole system heals a killed service and a killed server,
and dies with `ticketing up` when it is killed."""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psutil
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


# Low sign-up and sign-in rates for the first stack: two sign-ups per client address,
# two sign-ins per email (the second stack has the defaults).
LIMITS = {"SIGNUP_RATE_PER_CLIENT": "2/hour", "SIGNIN_RATE_PER_EMAIL": "2/hour"}


def _up(stacks: list[Stack], data_dir: Path, env: dict[str, str] | None = None) -> Stack:
    stack = Stack(data_dir, env=env)
    stacks.append(stack)
    stack.wait_until_up()
    return stack


def _until(what: str, condition: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout}s")
        time.sleep(0.1)


def _sign(client: httpx.Client, action: str, email: str, **headers: str) -> httpx.Response:
    response = client.post(
        f"/api/users/{action}", json={"email": email, "password": PASSWORD}, headers=headers
    )
    client.cookies.clear()
    return response


def test_one_data_dir_through_its_life_sessions_limits_one_instance_sigterm_healing_sigkill(
    stacks: list[Stack], tmp_path: Path
) -> None:
    """One test, two stacks of the whole system on one data dir (each start costs tens
    of seconds): sign-up, session and sign-out through the gateway; sign-up and sign-in
    limits given through the environment hold through the gateway, which names the real
    client, so a client cannot escape them by sending its own X-Forwarded-For; a second
    `up` on the same data dir is refused; SIGTERM leaves no process behind; a restart
    keeps users and sessions; it heals a killed service while the others keep
    answering, and a killed PostgreSQL; SIGKILL of `ticketing up` leaves no process
    behind either."""
    data_dir = tmp_path / "data"
    leaver, stayer, spoofer = (f"{uuid.uuid4().hex}@example.com" for _ in range(3))
    first = _up(stacks, data_dir, LIMITS)

    second = subprocess.run(
        up_argv(free_port(), data_dir), capture_output=True, text=True, timeout=60, check=False
    )
    with httpx.Client(base_url=first.url) as client:
        signup = client.post("/api/users/signup", json={"email": leaver, "password": PASSWORD})
        current = client.get("/api/users/currentuser")
        signout = client.post("/api/users/signout")
        after = client.get("/api/users/currentuser")
    kept = httpx.post(first.url + "/api/users/signup", json={"email": stayer, "password": PASSWORD})
    # The two sign-ups the client address may make are made: a third is refused, even
    # claiming another address.
    with httpx.Client(base_url=first.url, timeout=30) as limited:
        spoofed = _sign(limited, "signup", spoofer, **{"X-Forwarded-For": "203.0.113.77"})
        signins = [_sign(limited, "signin", leaver) for _ in range(3)]
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
    assert spoofed.status_code == 429
    assert spoofed.json() == {"errors": [{"message": "Too many sign-ups, try again later"}]}
    assert 1 <= int(spoofed.headers["Retry-After"]) <= 3600
    assert [response.status_code for response in signins] == [200, 200, 429]
    assert signins[2].json() == {
        "errors": [{"message": "Too many sign-in attempts, try again later"}]
    }
    assert code == 0
    assert len(first.children) >= 3  # postgres, auth, gateway (and postgres' workers)
    assert first.left_running() == []

    again = _up(stacks, data_dir)
    names = {child.name() for child in again.children}
    client = httpx.Client(base_url=again.url, cookies=kept.cookies, timeout=30)
    still = client.get("/api/users/currentuser")
    signin = client.post("/api/users/signin", json={"email": stayer, "password": PASSWORD})

    assert still.json()["currentUser"] == {"id": kept.json()["id"], "email": stayer}
    assert signin.status_code == 200

    # Healing: orders killed while other services are asked, through the gateway.
    others: list[int] = []
    hammering = threading.Event()

    def hammer() -> None:
        with httpx.Client(base_url=again.url, timeout=30) as other:
            while hammering.is_set():
                others.extend(other.get(path).status_code for path in ("/api/tickets", "/"))

    def orders_answer() -> bool:
        return client.get("/api/orders").status_code == 200

    hammering.set()
    hammerer = threading.Thread(target=hammer)
    hammerer.start()
    try:
        os.kill(again.recorded_pid("orders"), signal.SIGKILL)
        again.wait_for("orders exited with code -9; restarting in 0.5 s (restart 1)")
        again.wait_for("orders is ready again", timeout=120)
        _until("orders answers again", orders_answer)
    finally:
        hammering.clear()
        hammerer.join(30)

    os.kill(again.recorded_pid("postgres"), signal.SIGKILL)
    again.wait_for("postgres exited with code -9; restarting in 0.5 s (restart 1)")
    again.wait_for("postgres is ready again", timeout=120)
    _until("orders answers after PostgreSQL restarted", orders_answer, timeout=60)
    client.close()

    # Every process it runs now (orders and postgres are new ones) dies with it.
    again.children = psutil.Process(again.proc.pid).children(recursive=True)
    again.proc.send_signal(signal.SIGKILL)
    again.proc.wait(10)
    _until("every process of the killed run exited", lambda: again.left_running() == [])

    assert len(others) >= 2
    assert set(others) == {200}, others
    print(f"{len(others)} requests to other services while orders restarted, all 200")
    assert {"postgres", "nats-server", "redis-server", "caddy"} <= names
