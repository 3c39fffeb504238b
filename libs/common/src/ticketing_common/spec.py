"""``ServiceSpec``: the one description of a service that everything else derives from.

Each service exports one spec, ``SPEC`` in its ``app`` module, and registers it under
the ``ticketing.services`` entry point in its ``pyproject.toml``. From the spec:

- the app (``spec.create_app``, the only app builder): routes, API docs at the
  prefix, error rendering, the database, the event bus, the outbox relay, the
  listeners (durable consumers named after ``SERVICE_NAME``, which defaults to the
  spec's name), revocation following, the service's own workers and components;
- what the service needs (a database, NATS, Redis), read from its settings class;
- the dev stack's services and the gateway's route table (``ticketing_devstack.registry``);
- the test harness (``ticketing_common.testing``: settings, a migrated database, a
  served app and clients, the same fixtures for every service);
- the images (the root ``Dockerfile``'s ``PACKAGE``) and the Kubernetes and skaffold
  lists, which ``tests/deploy`` checks against the specs.

What only the running service can build (a throttle, a payment provider, a job
store) comes from the spec's ``parts``: a function of a ``ServiceContext`` (the
settings and the shared infrastructure made for this app) that returns ``Parts``.
Routes reach those components by type with ``provided(Kind)``, never by a string.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from fastapi import APIRouter, FastAPI
from starlette.middleware import Middleware
from starlette.routing import Mount

from ticketing_common import faults, tracing
from ticketing_common.app import Hook, ReadinessCheck, ServiceRuntime, Worker, create_service_app
from ticketing_common.db import Database
from ticketing_common.errors import install_error_handlers
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import Payload
from ticketing_common.events.listener import Listener, ListenerGroup, RetryPolicy
from ticketing_common.events.outbox import OutboxRelay
from ticketing_common.metrics import Metrics
from ticketing_common.revocations import RevocationFollower
from ticketing_common.settings import (
    BusSettings,
    DatabaseSettings,
    RedisSettings,
    ServiceSettings,
)
from ticketing_common.state import Components

logger = logging.getLogger("ticketing.spec")

S = TypeVar("S", bound=ServiceSettings)

ENTRY_POINT_GROUP = "ticketing.services"
CATCH_ALL = "/"
"""The ``api_prefix`` of the service that gets every path no other prefix matches (web)."""


@dataclass(frozen=True)
class ServiceContext(Generic[S]):
    """What the app builder made for one app, handed to the service's ``parts``."""

    settings: S
    bus_or_none: EventBus | None
    database_or_none: Database | None
    retry: RetryPolicy
    metrics: Metrics = field(default_factory=Metrics)
    """The app's metrics registry: the service's own series register on it."""

    @property
    def database(self) -> Database:
        if self.database_or_none is None:
            raise TypeError(f"{type(self.settings).__name__} has no DATABASE_URL")
        return self.database_or_none

    @property
    def bus(self) -> EventBus:
        if self.bus_or_none is None:
            raise TypeError(f"{type(self.settings).__name__} has no NATS_URL")
        return self.bus_or_none


@dataclass(frozen=True)
class Parts:
    """A service's own pieces, made for one app by its spec's ``parts``."""

    provides: Sequence[object] = ()
    """Components its routes reach with ``provided(Kind)``."""
    listeners: Sequence[Listener[Any]] = ()
    """Event handlers: one durable consumer each, named ``{SERVICE_NAME}-{event slug}``."""
    workers: Sequence[Worker] = ()
    on_startup: Sequence[Hook] = ()
    """Run before it serves, after the bus connected, in order."""
    on_shutdown: Sequence[Hook] = ()
    """Run after the workers stopped: close what the parts opened."""
    readiness: Sequence[ReadinessCheck] = ()
    middleware: Sequence[Middleware] = ()
    """Run inside the request context and the body limit, first listed outermost."""


def no_parts(_: ServiceContext[Any]) -> Parts:
    return Parts()


@dataclass(frozen=True, kw_only=True)
class ServiceSpec(Generic[S]):
    """One service: its identity, settings, routes and the parts it builds."""

    name: str
    """``tickets``: the default ``SERVICE_NAME``, the database ``ticketing_tickets``,
    the image ``ticketing/tickets`` and the Kubernetes Deployment ``tickets``."""
    package: str
    """The importable package, e.g. ``ticketing_tickets`` (the Dockerfile's ``PACKAGE``)."""
    title: str
    settings: type[S]
    api_prefix: str | None = None
    """``/api/tickets``: routed to it by the gateway, where its API docs are served and
    its routers are mounted. ``CATCH_ALL`` for the web pages; None when the gateway
    routes nothing to it (expiration). Every routed service verifies sessions, so it
    follows session revocations."""
    routers: Sequence[APIRouter] = ()
    """Mounted under ``api_prefix`` (the routers themselves carry no prefix)."""
    also_routed: Mapping[str, Sequence[APIRouter]] = field(default_factory=dict)
    """More prefixes the gateway routes to it, each with the routers mounted under it
    (orders' ``/api/checkins``): a resource of its own that the service owns. In its
    API docs like the rest."""
    mounts: Sequence[Mount] = ()
    parts: Callable[[ServiceContext[S]], Parts] = no_parts
    error_handlers: Callable[[FastAPI], None] = install_error_handlers
    """How errors are rendered: the shared JSON shape unless a service renders pages."""
    bus_is_required: bool = True
    """False when a broker outage must not make the service unready (the web pages:
    they keep refusing the revocations they know). It still connects at start-up."""
    stripe_secret: bool = False
    """Charges cards: gets ``STRIPE_SECRET_KEY`` (and ``STRIPE_API_BASE`` for the sandbox)."""
    stripe_publishable: bool = False
    """Tokenises cards in the browser: gets ``STRIPE_PUBLISHABLE_KEY`` when there is one."""
    api_docs: bool = field(default=True)
    """Serve Swagger UI at the prefix (when ``API_DOCS_ENABLED``); off for pages."""
    publishes: tuple[type[Payload], ...] = ()
    """The events it publishes (through its outbox, or directly): the only event
    subjects NATS lets its user publish to (``ticketing_common.natsauth``)."""
    consumes: tuple[type[Payload], ...] = ()
    """The events its ``Parts.listeners`` handle, one durable consumer each: the only
    consumers NATS lets its user make and read. The app builder refuses listeners that
    differ from it."""

    def __post_init__(self) -> None:
        for what, events in (("publishes", self.publishes), ("consumes", self.consumes)):
            if events and not self.uses_nats:
                raise TypeError(f"{self.name} {what} events but its settings have no NATS_URL")
            if len(set(events)) != len(events):
                raise TypeError(f"{self.name} {what} an event type twice")
        if self.also_routed and (self.api_prefix is None or self.is_catch_all):
            raise TypeError(f"{self.name} has other prefixes but no API prefix of its own")
        if self.api_prefix in self.also_routed:
            raise TypeError(f"{self.name} routes {self.api_prefix} twice")

    # What the service needs, as its settings class says.
    @property
    def needs_database(self) -> bool:
        return issubclass(self.settings, DatabaseSettings)

    @property
    def uses_nats(self) -> bool:
        return issubclass(self.settings, BusSettings)

    @property
    def uses_redis(self) -> bool:
        return issubclass(self.settings, RedisSettings)

    @property
    def prefixes(self) -> tuple[str, ...]:
        """Every prefix the gateway routes to it: ``api_prefix`` first, then those of
        ``also_routed``; none when it has no ``api_prefix``."""
        if self.api_prefix is None:
            return ()
        return (self.api_prefix, *self.also_routed)

    @property
    def follows_revocations(self) -> bool:
        return self.api_prefix is not None and self.uses_nats

    @property
    def database_name(self) -> str:
        return f"ticketing_{self.name}"

    @property
    def app_factory(self) -> str:
        """The ``module:callable`` uvicorn runs with ``--factory``."""
        return f"{self.package}.app:create_app"

    @property
    def is_catch_all(self) -> bool:
        return self.api_prefix == CATCH_ALL

    def load_settings(self, settings: S | None = None, /, **values: Any) -> S:
        """The service's settings: ``settings`` if given, else read from the environment
        with ``values`` over it. ``SERVICE_NAME`` defaults to the spec's name."""
        if settings is None:
            settings = self.settings(**values)
        if "SERVICE_NAME" not in settings.model_fields_set:
            settings = settings.model_copy(update={"SERVICE_NAME": self.name})
        return settings

    def check_listeners(self, listeners: Sequence[Listener[Any]]) -> None:
        """Refuse listeners that handle other events than ``consumes`` says: NATS would
        refuse the consumers of undeclared ones, and the durable consumers of declared
        ones nobody handles would fill up."""
        handled = [listener.payload_type for listener in listeners]
        declared = set(self.consumes)
        problems = [
            f"{kind}: {', '.join(sorted(event.event_type.value for event in events))}"
            for kind, events in (
                ("listened to but not in consumes", set(handled) - declared),
                ("in consumes but no listener", declared - set(handled)),
                ("listened to twice", {event for event in handled if handled.count(event) > 1}),
            )
            if events
        ]
        if problems:
            raise TypeError(f"{self.name}'s listeners differ from its spec: {'; '.join(problems)}")

    def create_app(self, settings: S | None = None) -> FastAPI:
        """The service's app (``uvicorn --factory {package}.app:create_app``)."""
        settings = self.load_settings(settings)
        faults.arm(settings.FAULT_POINTS)
        database = (
            Database(
                settings.DATABASE_URL,
                pool_size=settings.DATABASE_POOL_SIZE,
                max_overflow=settings.DATABASE_POOL_OVERFLOW,
            )
            if isinstance(settings, DatabaseSettings)
            else None
        )
        bus = EventBus.from_settings(settings) if isinstance(settings, BusSettings) else None
        retry = (
            RetryPolicy.from_settings(settings)
            if isinstance(settings, BusSettings)
            else RetryPolicy()
        )
        metrics = Metrics()
        parts = self.parts(ServiceContext(settings, bus, database, retry, metrics))
        self.check_listeners(parts.listeners)

        components = Components([settings, metrics, *parts.provides])
        workers: list[Worker] = []
        on_startup: list[Hook] = []
        on_shutdown: list[Hook] = []
        if database is not None:
            components.add(database)
        if bus is not None:
            components.add(bus)
            if database is not None:
                assert isinstance(settings, BusSettings)
                # Every service with a database and a bus publishes through its outbox.
                relay = OutboxRelay(
                    database,
                    bus,
                    linger_seconds=settings.OUTBOX_LINGER_MS / 1000,
                    metrics=metrics,
                )
                components.add(relay)
                workers.append(relay.run)
            if parts.listeners:
                group = ListenerGroup(
                    bus,
                    service=settings.SERVICE_NAME,
                    policy=retry,
                    listeners=[*parts.listeners],
                    metrics=metrics,
                )
                components.add(group)
                workers.append(group.run)
            if not self.bus_is_required:
                # Connected by a hook rather than by the runtime, whose bus is a
                # readiness check.
                connected = bus

                async def connect() -> None:
                    await connected.connect()

                on_startup.append(connect)
                on_shutdown.append(bus.close)
        revocations = (
            RevocationFollower(bus, settings)
            if bus is not None and isinstance(settings, BusSettings) and self.follows_revocations
            else None
        )
        runtime = ServiceRuntime(
            database=database,
            bus=bus if self.bus_is_required else None,
            workers=[*workers, *parts.workers],
            on_startup=[*on_startup, *parts.on_startup],
            on_shutdown=[*parts.on_shutdown, *on_shutdown],
            readiness=parts.readiness,
            revocations=revocations,
            components=components,
        )
        routed = self.api_prefix is not None and not self.is_catch_all
        app = create_service_app(
            settings=settings,
            title=self.title,
            routers=self.routers,
            router_prefix=self.api_prefix if routed and self.api_prefix else "",
            runtime=runtime,
            docs_prefix=self.api_prefix if routed and self.api_docs else None,
            middleware=parts.middleware,
            error_handlers=self.error_handlers,
            metrics=metrics,
        )
        for prefix, routers in self.also_routed.items():
            for router in routers:
                app.include_router(router, prefix=prefix)
        for mount in self.mounts:
            app.router.routes.append(mount)
        tracing.install(app, settings, database=database, bus=bus)
        return app


def installed_specs() -> tuple[ServiceSpec[Any], ...]:
    """Every service installed in this environment, by its ``ticketing.services``
    entry point, in name order. One whose spec cannot be loaded is left out, loudly."""
    specs: list[ServiceSpec[Any]] = []
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            spec = entry.load()
        except Exception:
            logger.warning("service spec not loadable", extra={"entry": entry.value}, exc_info=True)
            continue
        if not isinstance(spec, ServiceSpec):
            logger.warning("not a ServiceSpec", extra={"entry": entry.value})
            continue
        specs.append(spec)
    return tuple(sorted(specs, key=lambda spec: spec.name))
