"""Pytest fixtures that start the Stripe sandbox when ``STRIPE_SECRET_KEY`` is unset.

``stripe_api`` (session scope) says where a Stripe client should go: the sandbox,
served on 127.0.0.1 by a background thread with its own event loop (so sync and
async tests alike can call it), with the key ``sk_test_sandbox``; or, when
``STRIPE_SECRET_KEY`` is set, Stripe itself (``STRIPE_API_BASE`` if set, else
``https://api.stripe.com``) with that key. A live key is refused: tests never
move real money. ``stripe_client(api)`` builds the SDK client the way the
payments service does.

Each secret key is an account of its own in the sandbox, so a test that wants a
clean slate can use ``StripeApi.with_key("sk_test_<something unique>")``.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import stripe

STRIPE_API_BASE = "https://api.stripe.com"
SANDBOX_SECRET_KEY = "sk_test_sandbox"  # noqa: S105 - the sandbox accepts any test key
START_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class StripeApi:
    """Where Stripe is for this test session, and the secret key to use there."""

    api_base: str
    secret_key: str
    sandbox: bool

    def with_key(self, secret_key: str) -> StripeApi:
        """The same API with another key: in the sandbox, a fresh, empty account."""
        return replace(self, secret_key=secret_key)


class _SandboxThread(threading.Thread):
    """The sandbox served by uvicorn in this thread's own event loop."""

    def __init__(self) -> None:
        super().__init__(name="stripe-sandbox", daemon=True)
        self.url = ""
        self.error: BaseException | None = None
        self.ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None

    def run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the thread that waits in start()
            self.error = exc
        finally:
            self.ready.set()

    async def _serve(self) -> None:
        from ticketing_common.testing.helpers import serve_app
        from ticketing_stripe_sandbox.app import create_app

        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        async with serve_app(create_app()) as served:
            self.url = served.url
            self.ready.set()
            await self._stopping.wait()

    def shutdown(self) -> None:
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None and not loop.is_closed():
            # The loop may have ended on its own; then there is nothing left to stop.
            with suppress(RuntimeError):
                loop.call_soon_threadsafe(stopping.set)
        self.join(timeout=15)


@contextmanager
def serve_sandbox() -> Iterator[str]:
    """Serve a fresh sandbox on 127.0.0.1 for the ``with`` block; yields its base URL."""
    thread = _SandboxThread()
    thread.start()
    if not thread.ready.wait(START_TIMEOUT_SECONDS):
        thread.shutdown()
        raise TimeoutError(f"the Stripe sandbox did not start in {START_TIMEOUT_SECONDS:.0f}s")
    if thread.error is not None or not thread.url:
        raise RuntimeError("the Stripe sandbox did not start") from thread.error
    try:
        yield thread.url
    finally:
        thread.shutdown()


def stripe_api_from_environment(environ: dict[str, str] | None = None) -> StripeApi | None:
    """The real Stripe API when ``STRIPE_SECRET_KEY`` names a test key; None when unset."""
    env = dict(os.environ) if environ is None else environ
    key = env.get("STRIPE_SECRET_KEY", "").strip()
    if not key:
        return None
    if not key.startswith(("sk_test_", "rk_test_")):
        raise pytest.UsageError(
            "STRIPE_SECRET_KEY must be a test-mode key (sk_test_…) to run the tests; "
            "unset it to use the local Stripe sandbox."
        )
    return StripeApi(env.get("STRIPE_API_BASE") or STRIPE_API_BASE, key, sandbox=False)


@pytest.fixture(scope="session")
def stripe_api() -> Iterator[StripeApi]:
    """The Stripe API of this session: the local sandbox unless ``STRIPE_SECRET_KEY`` is set."""
    real = stripe_api_from_environment()
    if real is not None:
        yield real
        return
    with serve_sandbox() as url:
        yield StripeApi(api_base=url, secret_key=SANDBOX_SECRET_KEY, sandbox=True)


def stripe_client(api: StripeApi, *, max_network_retries: int = 2) -> stripe.StripeClient:
    """A Stripe SDK client for ``api``, on httpx, usable from sync and async code."""
    import stripe

    return stripe.StripeClient(
        api.secret_key,
        base_addresses={"api": api.api_base},
        http_client=stripe.HTTPXClient(allow_sync_methods=True),
        max_network_retries=max_network_retries,
    )
