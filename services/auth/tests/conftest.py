"""Fixtures: auth served over real HTTP on a fresh, migrated PostgreSQL database, a fresh
NATS namespace (auth publishes session:revoked) and a reader of its events; its rate
limits counted in the real Redis under that namespace. The shared harness
(``ticketing_common.testing.service``) provides them from auth's spec."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import httpx
import pytest

from ticketing_auth.app import SPEC
from ticketing_auth.settings import Settings
from ticketing_common.spec import ServiceSpec
from ticketing_common.testing import EventsOf, Serve

# What the test modules import from here.
__all__ = ["EventsOf"]

ServeAuth = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


@pytest.fixture(scope="session")
def service_spec() -> ServiceSpec[Settings]:
    return SPEC


@pytest.fixture
def serve_auth(serve: Serve) -> ServeAuth:
    """Serve auth with some settings overridden; yields a client of it."""

    @asynccontextmanager
    async def serve_with_client(**overrides: object) -> AsyncIterator[httpx.AsyncClient]:
        async with serve(**overrides) as served, served.client() as client:
            yield client

    return serve_with_client
