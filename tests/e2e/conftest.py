"""What the end-to-end tests share: a `ticketing up` process they start and stop."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest

from ticketing_common.embedded import free_port
from ticketing_devstack.instance import LOCK_FILE

PASSWORD = "correct horse battery"
UP_TIMEOUT = 180.0
EVENT_TIMEOUT = 30.0  # how long an event may take to reach another service


def up_argv(port: int, data_dir: Path, *extra: str) -> list[str]:
    ticketing = [sys.executable, "-m", "ticketing_devstack"]
    return [*ticketing, "up", "--port", str(port), "--data-dir", str(data_dir), *extra]


class Stack:
    """A `ticketing up` process and the lines it printed."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Start ``ticketing up``; ``extra_args`` e.g. ``("--expiration-window", "5")``;
        ``env`` adds settings it passes on to every service (``MAX_OPEN_ORDERS_PER_USER``)."""
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self.proc = subprocess.Popen(
            up_argv(self.port, data_dir, *extra_args),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
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
        self.wait_for(f"Ticketing is up at {self.url}", timeout)
        # Captured now, while every process it started runs.
        self.children = list(psutil.Process(self.proc.pid).children(recursive=True))

    def wait_for(self, text: str, timeout: float = 60) -> None:
        """Wait until a line it prints from now on contains ``text``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._queue.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                break
            if text in line:
                return
        raise AssertionError(f"never printed {text!r}:\n" + "\n".join(self.lines))

    def recorded_pid(self, name: str) -> int:
        """The PID of the child ``name`` as the lock file records it now."""
        record = json.loads((self.data_dir / LOCK_FILE).read_text())
        return next(int(child["pid"]) for child in record["children"] if child["name"] == name)

    def terminate(self, timeout: float = 60) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def stop(self) -> None:
        """Stop it if it still runs: SIGTERM (it stops its own children), then SIGKILL."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def left_running(self) -> list[int]:
        alive = []
        for child in self.children:
            try:
                if child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
                    alive.append(child.pid)
            except psutil.NoSuchProcess:
                pass
        return alive


# Starting the whole system costs tens of seconds, so the modules share two stacks
# (session scope), each given the union of the settings its modules need. Every test
# makes its own users and tickets.
SHORT_WINDOW_SECONDS = 8
"""The short stack's expiration window: long enough to pay through the gateway, short
enough to watch an unpaid order expire."""
LONG_STACK_ENV = {
    # The hoarder tries every ticket on sale, with the other modules' tickets among
    # them: what stops it must be the cap, not the default 10 orders a minute per buyer
    # or 60 per client address (every test's address is 127.0.0.1).
    "ORDER_RATE_PER_USER": "1000/minute",
    "ORDER_RATE_PER_CLIENT": "1000/minute",
}


@contextmanager
def started_stack(
    data_dir: Path, *, extra_args: Sequence[str] = (), env: Mapping[str, str] | None = None
) -> Iterator[Stack]:
    """A `Stack`, up; stopped on the way out."""
    started = Stack(data_dir, extra_args=extra_args, env=env)
    try:
        started.wait_until_up(UP_TIMEOUT)
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="session")
def long_window_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`ticketing up` with the default expiration window (an order holds its ticket for
    the whole test) and raised order rates (``LONG_STACK_ENV``)."""
    with started_stack(tmp_path_factory.mktemp("long") / "data", env=LONG_STACK_ENV) as up:
        yield up


@pytest.fixture(scope="session")
def short_window_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`ticketing up --traces` with a ``SHORT_WINDOW_SECONDS`` expiration window; its data
    dir (``stack.data_dir``) holds the spans."""
    if os.environ.get("STRIPE_SECRET_KEY"):
        pytest.skip("these journeys use the Stripe sandbox's test cards")
    window = ("--expiration-window", str(SHORT_WINDOW_SECONDS))
    data_dir = tmp_path_factory.mktemp("short") / "data"
    with started_stack(data_dir, extra_args=(*window, "--traces")) as up:
        yield up


@contextmanager
def signed_up(stack: Stack) -> Iterator[httpx.Client]:
    """A signed-up user: a client whose cookie jar holds their session."""
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        email = f"{uuid.uuid4().hex}@example.com"
        signup = client.post("/api/users/signup", json={"email": email, "password": PASSWORD})
        assert signup.status_code == 201, signup.text
        assert "session" in client.cookies
        yield client


def eventually(
    what: str, attempt: Callable[[], httpx.Response], done: Callable[[httpx.Response], bool]
) -> httpx.Response:
    """Repeat `attempt` until `done` holds for its response, or fail after EVENT_TIMEOUT."""
    deadline = time.monotonic() + EVENT_TIMEOUT
    while True:
        response = attempt()
        if done(response):
            return response
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{what}: still {response.status_code} {response.text} after {EVENT_TIMEOUT}s"
            )
        time.sleep(0.2)


def for_sale_ids(client: httpx.Client) -> list[str]:
    """Every ticket id in `GET /api/tickets`, following the `next` links page by page."""
    ids: list[str] = []
    url: str | None = "/api/tickets?limit=100"
    while url is not None:
        page = client.get(url)
        assert page.status_code == 200, page.text
        ids.extend(ticket["id"] for ticket in page.json())
        following = page.links.get("next")
        url = following["url"] if following else None
    return ids


def order_when_known(buyer: httpx.Client, ticket_id: str) -> httpx.Response:
    """Orders learns of a ticket from ticket:created: 404 until its replica has it."""
    return eventually(
        "orders never learned of the ticket",
        lambda: buyer.post("/api/orders", json={"ticketId": ticket_id}),
        lambda response: response.status_code != 404,
    )
