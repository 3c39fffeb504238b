"""Helpers for tests: a real uvicorn server for an app, sessions, waiting for effects."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar, overload
from uuid import UUID, uuid4

import httpx
import uvicorn
from fastapi import FastAPI
from sqlalchemy import event

from ticketing_common.db import Database
from ticketing_common.embedded import HOST, free_port
from ticketing_common.session import COOKIE_NAME, UserPayload, issue_token
from ticketing_common.settings import ServiceSettings
from ticketing_common.state import components_of

MakeMigratedDatabase = Callable[[str], Awaitable[str]]
"""The ``make_migrated_database`` fixture: ``await make("ticketing_orders")`` is a fresh
database with that package's schema at head."""

T = TypeVar("T")


@dataclass
class ServedApp:
    app: FastAPI
    url: str
    server: uvicorn.Server

    def client(self, **kwargs: object) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30, **kwargs)  # type: ignore[arg-type]

    def component(self, kind: type[T]) -> T:
        """The app's component of type ``kind`` (its relay, listeners, throttle, ...)."""
        return components_of(self.app).get(kind)


@asynccontextmanager
async def serve_app(app: FastAPI) -> AsyncIterator[ServedApp]:
    """Serve an app on 127.0.0.1 with uvicorn in this event loop, lifespan included."""
    port = free_port()
    config = uvicorn.Config(
        app, host=HOST, port=port, log_config=None, access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    deadline = time.monotonic() + 30
    while not server.started:
        if task.done():
            task.result()  # raises the start-up error
            raise RuntimeError("server stopped during start-up")
        if time.monotonic() > deadline:
            raise TimeoutError("server did not start")
        await asyncio.sleep(0.02)
    try:
        yield ServedApp(app=app, url=f"http://{HOST}:{port}", server=server)
    finally:
        server.should_exit = True
        await task


def signed_in_cookie(
    settings: ServiceSettings,
    *,
    user_id: UUID | None = None,
    email: str | None = None,
    session_id: UUID | None = None,
) -> dict[str, str]:
    """Cookies of a signed-in user, made the way auth makes them."""
    uid = user_id or uuid4()
    user = UserPayload(
        id=uid, email=email or f"user-{uid.hex[:8]}@example.com", sid=session_id or uuid4()
    )
    return {COOKIE_NAME: issue_token(user, settings)}


def signed_in_headers(settings: ServiceSettings, *, user_id: UUID | None = None) -> dict[str, str]:
    """A Cookie header of a signed-in user, for one request (httpx deprecates a
    request's own ``cookies=``)."""
    cookies = signed_in_cookie(settings, user_id=user_id)
    return {"Cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())}


# The result is the probe's first truthy answer, so never None: the overloads say so.
@overload
async def wait_until(
    probe: Callable[[], Awaitable[T | None]], *, timeout: float = 15, interval: float = 0.05
) -> T: ...


@overload
async def wait_until(
    probe: Callable[[], T | None], *, timeout: float = 15, interval: float = 0.05
) -> T: ...


async def wait_until(
    probe: Callable[[], T | Awaitable[T | None] | None],
    *,
    timeout: float = 15,
    interval: float = 0.05,
) -> T:
    """Poll ``probe`` (sync or async) until it returns something truthy, or fail clearly."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = probe()
        result = await outcome if inspect.isawaitable(outcome) else outcome
        if result:
            return result  # truthy, so not None
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


@contextmanager
def statements_of(db: Database) -> Iterator[list[str]]:
    """The SQL statements ``db`` sends to PostgreSQL meanwhile (BEGIN and COMMIT are not
    statements here: SQLAlchemy sends them outside its cursor)."""
    sent: list[str] = []

    def count(*args: Any) -> None:
        sent.append(args[2])

    event.listen(db.engine.sync_engine, "before_cursor_execute", count)
    try:
        yield sent
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", count)
