"""Pytest fixtures that start real servers once per test session.

Embedded NATS (JetStream), PostgreSQL and Redis start from their PyPI wheels
unless ``NATS_URL`` / ``DATABASE_URL`` / ``REDIS_URL`` name external servers.
Tests are isolated by a fresh database and a fresh event namespace (streams and
subjects) each, never by mocks.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from uuid import uuid4

import pytest

from ticketing_common.db import upgrade_to_head
from ticketing_common.embedded import (
    EmbeddedServer,
    EmbeddedStack,
    NatsServer,
    PostgresServer,
    configured_or_embedded,
    create_database,
    drop_database,
    free_port,
    with_database,
)
from ticketing_common.events.bus import EventBus
from ticketing_common.testing.helpers import MakeMigratedDatabase

# The spec-driven fixtures (settings, migrated database, served app) for every service.
pytest_plugins = ["ticketing_common.testing.service"]

T = TypeVar("T")


def run_sync(coro: Coroutine[object, object, T]) -> T:
    """Run a coroutine to completion from sync code, even inside a running loop."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


@dataclass(frozen=True)
class Infrastructure:
    nats_url: str
    postgres_url: str  # an admin URL; each test gets its own database on that server
    redis_url: str


@pytest.fixture(scope="session")
def infrastructure() -> Iterator[Infrastructure]:
    # Not under pytest's basetemp: pytest prunes old basetemps, and a concurrent run's
    # pruning would delete the data directory of servers that are still running.
    data_dir = Path(tempfile.mkdtemp(prefix="ticketing-test-servers-"))
    stack = EmbeddedStack(data_dir)

    def start(server: EmbeddedServer) -> str:
        if isinstance(server, PostgresServer):
            # Every test makes and drops its databases: with fsync each drop waited
            # seconds for the disk. Nothing here outlives the session.
            server.durable = False
        return stack.run(server)

    try:
        urls = configured_or_embedded(os.environ, data_dir, start)
        yield Infrastructure(
            nats_url=urls.nats or "", postgres_url=urls.postgres or "", redis_url=urls.redis or ""
        )
    finally:
        stack.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
def nats_url(infrastructure: Infrastructure) -> str:
    return infrastructure.nats_url


@pytest.fixture
def redis_url(infrastructure: Infrastructure) -> str:
    return infrastructure.redis_url


@pytest.fixture
def namespace() -> str:
    """A fresh event namespace: its own streams and subjects."""
    return f"t{uuid4().hex[:12]}"


async def _delete_streams(url: str, namespace: str) -> None:
    bus = EventBus(url, namespace)
    await bus.connect()
    try:
        for stream in (bus.subjects.stream, bus.subjects.dead_letter_stream):
            try:
                await bus.js.delete_stream(stream)
            except Exception:  # noqa: S112 - already gone is fine
                continue
    finally:
        await bus.close()


@pytest.fixture
async def bus(nats_url: str, namespace: str) -> AsyncIterator[EventBus]:
    """A connected bus on the test's namespace; its streams are deleted afterwards."""
    event_bus = await EventBus(nats_url, namespace, client_name="test").connect()
    try:
        yield event_bus
    finally:
        await event_bus.close()
        await _delete_streams(nats_url, namespace)


class MigratedTemplates:
    """One database per service package migrated to head once per test session, to be
    copied (``CREATE DATABASE … TEMPLATE``) instead of running the migration chain
    again for every test. Copying is a file copy inside PostgreSQL; the chain is tens
    of DDL statements through Alembic."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.names: dict[str, str] = {}
        self._lock = threading.Lock()

    def template_of(self, package: str) -> str:
        """The template database of ``package`` (e.g. ``ticketing_orders``), made at first use."""
        with self._lock:
            if package not in self.names:
                name = f"template_{package}_{uuid4().hex[:8]}"
                run_sync(create_database(self.admin_url, name))
                # Alembic's environment disposes its engine: no connection is left
                # open, which CREATE DATABASE … TEMPLATE requires of the template.
                upgrade_to_head(package, with_database(self.admin_url, name))
                self.names[package] = name
            return self.names[package]

    def drop_all(self) -> None:
        for name in self.names.values():
            run_sync(drop_database(self.admin_url, name))


@pytest.fixture(scope="session")
def migrated_templates(infrastructure: Infrastructure) -> Iterator[MigratedTemplates]:
    templates = MigratedTemplates(infrastructure.postgres_url)
    yield templates
    templates.drop_all()


@pytest.fixture
def make_database(infrastructure: Infrastructure) -> Iterator[Callable[..., str]]:
    """Create fresh databases on demand, empty or copied from ``template``; all are
    dropped after the test."""
    created: list[str] = []

    def make(template: str | None = None) -> str:
        name = f"test_{uuid4().hex[:16]}"
        run_sync(create_database(infrastructure.postgres_url, name, template=template))
        created.append(name)
        return with_database(infrastructure.postgres_url, name)

    yield make
    for name in created:
        run_sync(drop_database(infrastructure.postgres_url, name))


@pytest.fixture
def make_migrated_database(
    make_database: Callable[..., str], migrated_templates: MigratedTemplates
) -> MakeMigratedDatabase:
    """Fresh databases with a service's schema at head, on demand: ``await
    make_migrated_database("ticketing_orders")``. Each is a copy of the package's
    template (migrated once per session), dropped after the test."""

    async def make(package: str) -> str:
        template = await asyncio.to_thread(migrated_templates.template_of, package)
        return await asyncio.to_thread(make_database, template)

    return make


@pytest.fixture
def database_url(make_database: Callable[[], str]) -> str:
    """A fresh, empty database for this test."""
    return make_database()


@pytest.fixture
def own_nats() -> Iterator[NatsServer]:
    """A NATS server of this test alone, which it may stop and start again."""
    data_dir = Path(tempfile.mkdtemp(prefix="ticketing-test-nats-"))
    server = NatsServer("nats", free_port(), data_dir).start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
