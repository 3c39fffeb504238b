"""`ticketing up` with low sign-up and sign-in rates given through the environment: the
limits hold through the gateway, which names the real client, so a client cannot
escape them by sending its own X-Forwarded-For."""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import PASSWORD, Stack

pytestmark = pytest.mark.e2e

if importlib.util.find_spec("ticketing_auth") is None or (
    importlib.util.find_spec("ticketing_auth.app") is None
):
    pytest.skip("the auth service is not installed yet", allow_module_level=True)

LIMITS = {"SIGNUP_RATE_PER_CLIENT": "2/hour", "SIGNIN_RATE_PER_EMAIL": "2/hour"}


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    started = Stack(tmp_path / "data", env=LIMITS)
    try:
        started.wait_until_up()
        yield started
    finally:
        started.stop()


def _sign(client: httpx.Client, action: str, email: str, **headers: str) -> httpx.Response:
    response = client.post(
        f"/api/users/{action}", json={"email": email, "password": PASSWORD}, headers=headers
    )
    client.cookies.clear()
    return response


def test_sign_up_and_sign_in_limits_hold_through_the_gateway(stack: Stack) -> None:
    emails = [f"{uuid.uuid4().hex}@example.com" for _ in range(3)]
    with httpx.Client(base_url=stack.url, timeout=30) as client:
        signups = [_sign(client, "signup", email) for email in emails[:2]]
        spoofed = _sign(client, "signup", emails[2], **{"X-Forwarded-For": "203.0.113.77"})
        signins = [_sign(client, "signin", emails[0]) for _ in range(3)]

    assert [response.status_code for response in signups] == [201, 201]
    assert spoofed.status_code == 429
    assert spoofed.json() == {"errors": [{"message": "Too many sign-ups, try again later"}]}
    assert 1 <= int(spoofed.headers["Retry-After"]) <= 3600
    assert [response.status_code for response in signins] == [200, 200, 429]
    assert signins[2].json() == {
        "errors": [{"message": "Too many sign-in attempts, try again later"}]
    }
