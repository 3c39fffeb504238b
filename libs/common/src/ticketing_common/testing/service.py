"""The test harness of every service, driven by its ``ServiceSpec``.

A service's ``tests/conftest.py`` says which service it tests::

    @pytest.fixture(scope="session")
    def service_spec() -> ServiceSpec[Settings]:
        return SPEC

and each of its tests may then ask for:

- ``migrated_url``: the test's own database with the service's schema at head, a copy
  of a template migrated once per session (only for a spec with a database);
- ``make_settings(**overrides)`` and ``settings``: the spec's settings class with what
  the spec needs filled in (``DATABASE_URL``; ``NATS_URL`` and the test's fresh
  ``NATS_NAMESPACE``; ``REDIS_URL``; the Stripe API of the ``stripe_api`` fixture when
  it charges cards), ``ENVIRONMENT=test``, ``SERVICE_NAME`` the spec's name, then
  ``settings_overrides`` and the call's overrides on top;
- ``serve(**overrides)``: the app served over real HTTP with those settings (an async
  context manager yielding a ``ServedApp``); ``served``: the app served with
  ``settings``; ``client``: an HTTP client of ``served``;
- ``db``: a ``Database`` on ``migrated_url``, to check rows;
- ``users``: request headers of made-up signed-in users; ``events_of(Payload)``: the
  events of one type published on the test's namespace so far.

``settings_overrides`` (a fixture, empty unless a conftest or a module overrides it)
holds the settings every test of a service runs with beyond the harness' own, e.g.
raised rate limits. Every served app is stopped before the test's event streams are
deleted (the ``bus`` fixture comes first).

Tests of several services at once use ``harness``: ``harness.serve(SPEC, **overrides)``,
``await harness.settings(SPEC, **overrides)``, ``await harness.database_url(SPEC)``.
Each spec gets one database per test, shared by every instance of it served;
``serve_spec(SPEC, settings)`` serves the app of settings a test made itself.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar
from uuid import UUID

import httpx
import pytest

from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import Envelope, P
from ticketing_common.settings import ServiceSettings
from ticketing_common.spec import ServiceSpec
from ticketing_common.testing.events import published_so_far
from ticketing_common.testing.helpers import (
    MakeMigratedDatabase,
    ServedApp,
    serve_app,
    signed_in_headers,
)

S = TypeVar("S", bound=ServiceSettings)

MakeSettings = Callable[..., Any]
"""The ``make_settings`` fixture: ``make_settings(RATE_LIMIT="1/minute")``."""
Serve = Callable[..., AbstractAsyncContextManager[ServedApp]]
"""The ``serve`` fixture: ``async with serve(RATE_LIMIT="1/minute") as served: ...``."""


def serve_spec(spec: ServiceSpec[S], settings: S) -> AbstractAsyncContextManager[ServedApp]:
    """The spec's app built with ``settings``, served over real HTTP (``serve_app``)."""
    return serve_app(spec.create_app(settings))


class StripeApi(Protocol):
    """Where the tests' Stripe is (the ``stripe_api`` fixture of the sandbox's plugin)."""

    @property
    def api_base(self) -> str: ...

    @property
    def secret_key(self) -> str: ...


class EventsOf(Protocol):
    async def __call__(self, payload_type: type[P], /) -> list[Envelope[P]]: ...


@dataclass(frozen=True)
class ServiceUnderTest(Generic[S]):
    """One service as a test runs it: its spec and the settings the test gives it."""

    spec: ServiceSpec[S]
    values: Mapping[str, Any]
    """What the harness fills in, with the test's own defaults over it."""

    def settings(self, **overrides: Any) -> S:
        return self.spec.settings(**{**self.values, **overrides})

    @asynccontextmanager
    async def serve(self, **overrides: object) -> AsyncIterator[ServedApp]:
        async with serve_spec(self.spec, self.settings(**overrides)) as served:
            yield served


@dataclass
class ServiceHarness:
    """The services of one test: their databases, the test's servers and namespace."""

    make_migrated_database: MakeMigratedDatabase
    nats_url: str
    namespace: str
    redis_url: str
    stripe_api: Callable[[], StripeApi]
    """Looked up only for a service that charges cards (starting the sandbox)."""
    _databases: dict[str, str] = field(default_factory=dict)

    async def database_url(self, spec: ServiceSpec[Any]) -> str:
        """The spec's database for this test, made at first use."""
        if not spec.needs_database:
            raise TypeError(f"the {spec.name} service has no database")
        if spec.name not in self._databases:
            self._databases[spec.name] = await self.make_migrated_database(spec.package)
        return self._databases[spec.name]

    async def of(self, spec: ServiceSpec[S], **defaults: object) -> ServiceUnderTest[S]:
        """The service with what its spec needs filled in, ``defaults`` over that."""
        values: dict[str, object] = {"ENVIRONMENT": "test", "SERVICE_NAME": spec.name}
        if spec.needs_database:
            values["DATABASE_URL"] = await self.database_url(spec)
        if spec.uses_nats:
            # The test's namespace: its own streams, and its own rate-limit counters.
            values.update(NATS_URL=self.nats_url, NATS_NAMESPACE=self.namespace)
        if spec.uses_redis:
            values["REDIS_URL"] = self.redis_url
        if spec.stripe_secret:
            stripe = self.stripe_api()
            values.update(STRIPE_SECRET_KEY=stripe.secret_key, STRIPE_API_BASE=stripe.api_base)
        return ServiceUnderTest(spec, {**values, **defaults})

    async def settings(self, spec: ServiceSpec[S], **overrides: object) -> S:
        return (await self.of(spec)).settings(**overrides)

    @asynccontextmanager
    async def serve(self, spec: ServiceSpec[Any], **overrides: object) -> AsyncIterator[ServedApp]:
        """Serve one more instance of the service (on its database of this test)."""
        async with (await self.of(spec)).serve(**overrides) as served:
            yield served


@pytest.fixture
def harness(
    request: pytest.FixtureRequest,
    make_migrated_database: MakeMigratedDatabase,
    nats_url: str,
    namespace: str,
    redis_url: str,
    bus: EventBus,
) -> ServiceHarness:
    """This test's services (``bus`` first, so its streams are deleted after they stopped)."""

    def stripe_api() -> StripeApi:
        found: StripeApi = request.getfixturevalue("stripe_api")
        return found

    return ServiceHarness(make_migrated_database, nats_url, namespace, redis_url, stripe_api)


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """Settings every test of the service runs with, beyond the harness' own; a conftest
    or a module overrides this fixture to set some."""
    return {}


@pytest.fixture
async def service_under_test(
    harness: ServiceHarness,
    service_spec: ServiceSpec[Any],
    settings_overrides: dict[str, object],
) -> ServiceUnderTest[Any]:
    return await harness.of(service_spec, **settings_overrides)


@pytest.fixture
async def migrated_url(harness: ServiceHarness, service_spec: ServiceSpec[Any]) -> str:
    return await harness.database_url(service_spec)


@pytest.fixture
def make_settings(service_under_test: ServiceUnderTest[Any]) -> MakeSettings:
    return service_under_test.settings


@pytest.fixture
def settings(make_settings: MakeSettings) -> Any:
    return make_settings()


@pytest.fixture
def serve(service_spec: ServiceSpec[Any], make_settings: MakeSettings) -> Serve:
    @asynccontextmanager
    async def serve_with(**overrides: object) -> AsyncIterator[ServedApp]:
        async with serve_spec(service_spec, make_settings(**overrides)) as served:
            yield served

    return serve_with


@pytest.fixture
async def served(
    service_spec: ServiceSpec[Any], settings: ServiceSettings
) -> AsyncIterator[ServedApp]:
    """The app with its workers (relay, listeners), served with ``settings``."""
    async with serve_spec(service_spec, settings) as app:
        yield app


@pytest.fixture
async def client(served: ServedApp) -> AsyncIterator[httpx.AsyncClient]:
    async with served.client() as http:
        yield http


@pytest.fixture
async def db(migrated_url: str) -> AsyncIterator[Database]:
    """Direct access to the service's database, to check rows (and hold locks)."""
    database = Database(migrated_url, pool_size=2)
    try:
        yield database
    finally:
        await database.dispose()


@dataclass(frozen=True)
class Users:
    """Made-up users signed in the way auth signs them in."""

    settings: ServiceSettings

    def headers(self, user_id: UUID) -> dict[str, str]:
        return signed_in_headers(self.settings, user_id=user_id)


@pytest.fixture
def users(settings: ServiceSettings) -> Users:
    return Users(settings)


@pytest.fixture
def events_of(bus: EventBus) -> EventsOf:
    """Every event of one type published on the test's namespace so far, in order."""

    async def read(payload_type: type[P]) -> list[Envelope[P]]:
        return await published_so_far(bus, payload_type)

    return read
