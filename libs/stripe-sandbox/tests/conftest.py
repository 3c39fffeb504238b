"""Fixtures: a fresh sandbox served over real HTTP for each test, and Stripe SDK clients
pointed at it, each with its own secret key (its own account)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from uuid import uuid4

import httpx
import pytest
import stripe

from ticketing_common.testing import ServedApp, serve_app
from ticketing_stripe_sandbox.app import create_app
from ticketing_stripe_sandbox.testing import StripeApi, stripe_client

MakeClient = Callable[[], stripe.StripeClient]


@pytest.fixture
async def sandbox() -> AsyncIterator[ServedApp]:
    async with serve_app(create_app()) as served:
        yield served


@pytest.fixture
def api(sandbox: ServedApp) -> StripeApi:
    return StripeApi(sandbox.url, f"sk_test_{uuid4().hex}", sandbox=True)


@pytest.fixture
def client(api: StripeApi) -> stripe.StripeClient:
    return stripe_client(api)


@pytest.fixture
async def raw(sandbox: ServedApp, api: StripeApi) -> AsyncIterator[httpx.AsyncClient]:
    """Plain HTTP with the test's key, for what the SDK hides (headers, raw bodies)."""
    async with sandbox.client(headers={"Authorization": f"Bearer {api.secret_key}"}) as http:
        yield http
