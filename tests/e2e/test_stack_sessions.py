"""`ticketing up`: after signing out, the old session cookie is refused by every service
within a bounded time, and auth will not renew it; the browser's sign-out on every
device ends the other sessions too. Only through the gateway."""

from __future__ import annotations

import importlib.util
import time
import uuid
from collections.abc import Callable

import httpx
import pytest

from .conftest import EVENT_TIMEOUT, PASSWORD, Stack

pytestmark = pytest.mark.e2e

for _service in ("ticketing_auth", "ticketing_tickets", "ticketing_orders", "ticketing_payments"):
    if importlib.util.find_spec(_service) is None:
        pytest.skip(f"{_service} is not installed yet", allow_module_level=True)


@pytest.fixture
def stack(long_window_stack: Stack) -> Stack:
    """The stack with the default expiration window, shared with other modules."""
    return long_window_stack


# Whether each service accepts a request as signed in, by what it answers.
def tickets_accepts(client: httpx.Client) -> bool:
    response = client.post("/api/tickets", json={"title": "Concert", "price": 10})
    assert response.status_code in {201, 401}, response.text
    return response.status_code == 201


def orders_accepts(client: httpx.Client) -> bool:
    response = client.get("/api/orders")
    assert response.status_code in {200, 401}, response.text
    return response.status_code == 200


def payments_accepts(client: httpx.Client) -> bool:
    # An empty body: 400 to a signed-in buyer (the session is checked first), 401 to
    # anyone else; nothing is charged either way.
    response = client.post("/api/payments", json={})
    assert response.status_code in {400, 401}, response.text
    return response.status_code == 400


def web_accepts(client: httpx.Client) -> bool:
    # The sell form for a signed-in visitor, the sign-in page for anyone else.
    response = client.get("/tickets/new")
    assert response.status_code in {200, 303}, response.text
    return response.status_code == 200


PROBES: dict[str, Callable[[httpx.Client], bool]] = {
    "tickets": tickets_accepts,
    "orders": orders_accepts,
    "payments": payments_accepts,
    "web": web_accepts,
}


def client_with(stack: Stack, session: str) -> httpx.Client:
    """A client that sends exactly this session cookie (and keeps no other)."""
    return httpx.Client(base_url=stack.url, timeout=30, headers={"Cookie": f"session={session}"})


def refused_everywhere_within(stack: Stack, session: str) -> dict[str, float]:
    """Seconds until each service refused the session; fails past EVENT_TIMEOUT."""
    started = time.monotonic()
    refused_after: dict[str, float] = {}
    with client_with(stack, session) as client:
        while len(refused_after) < len(PROBES):
            for name, accepts in PROBES.items():
                if name not in refused_after and not accepts(client):
                    refused_after[name] = time.monotonic() - started
            elapsed = time.monotonic() - started
            assert elapsed < EVENT_TIMEOUT, f"still accepted after {elapsed:.1f}s: {refused_after}"
            time.sleep(0.05)
    return refused_after


def sign_up(stack: Stack) -> tuple[str, str]:
    """A new account: its email and the session token of that sign-up."""
    email = f"{uuid.uuid4().hex}@example.com"
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        response = client.post("/api/users/signup", json={"email": email, "password": PASSWORD})
        assert response.status_code == 201, response.text
        return email, response.cookies["session"]


def sign_in(stack: Stack, email: str) -> str:
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        response = client.post("/api/users/signin", json={"email": email, "password": PASSWORD})
        assert response.status_code == 200, response.text
        return response.cookies["session"]


def test_after_sign_out_the_old_cookie_is_refused_by_every_service_within_the_bound(
    stack: Stack,
) -> None:
    _, session = sign_up(stack)
    _, other = sign_up(stack)
    with client_with(stack, session) as client:
        assert all(accepts(client) for accepts in PROBES.values())
        assert client.post("/api/users/signout").status_code == 200

    refused_after = refused_everywhere_within(stack, session)

    print(f"sign-out to refusal, seconds: {refused_after}")
    with client_with(stack, session) as client:
        assert client.post("/api/users/session/renew").status_code == 401
        assert client.get("/api/users/currentuser").json() == {"currentUser": None}
    with client_with(stack, other) as client:
        assert all(accepts(client) for accepts in PROBES.values()), "another session was refused"


def test_sign_out_everywhere_ends_every_session_of_the_account_everywhere(stack: Stack) -> None:
    email, first = sign_up(stack)
    second = sign_in(stack, email)
    _, stranger = sign_up(stack)

    with client_with(stack, second) as client:
        response = client.post("/api/users/signout/everywhere")
    assert response.json() == {"revokedSessions": 2}

    for session in (first, second):
        refused_everywhere_within(stack, session)
    with client_with(stack, stranger) as client:
        assert all(accepts(client) for accepts in PROBES.values())
