"""The service app base: health, readiness against real servers, request ids, workers."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.background import BackgroundTask

from ticketing_common.app import MAX_BODY_BYTES, ServiceRuntime, create_service_app
from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.logs import JsonFormatter
from ticketing_common.settings import ServiceSettings
from ticketing_common.testing import serve_app, wait_until

SETTINGS = ServiceSettings(ENVIRONMENT="test", SERVICE_NAME="probe")


async def test_ready_when_database_and_broker_are_reachable(
    database_url: str, nats_url: str, namespace: str
) -> None:
    runtime = ServiceRuntime(database=Database(database_url), bus=EventBus(nats_url, namespace))
    app = create_service_app(
        settings=SETTINGS, title="probe", routers=[], runtime=runtime, configure_logs=False
    )
    async with serve_app(app) as served, served.client() as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        ready = await client.get("/readyz")
        assert ready.status_code == 200
    assert not runtime.bus or not runtime.bus.connected  # closed on shutdown


async def test_not_ready_when_the_database_is_unreachable() -> None:
    # Port 1 on loopback: nothing listens there.
    runtime = ServiceRuntime(database=Database("postgresql://nobody@127.0.0.1:1/none"))
    app = create_service_app(
        settings=SETTINGS, title="probe", routers=[], runtime=runtime, configure_logs=False
    )
    async with serve_app(app) as served, served.client() as client:
        assert (await client.get("/healthz")).status_code == 200
        response = await client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"errors": [{"message": "database unreachable"}]}


async def test_request_id_is_echoed_or_made_up() -> None:
    router = APIRouter()

    @router.get("/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    app = create_service_app(
        settings=SETTINGS,
        title="probe",
        routers=[router],
        runtime=ServiceRuntime(),
        configure_logs=False,
    )
    async with serve_app(app) as served, served.client() as client:
        given = await client.get("/hello", headers={"X-Request-ID": "abc123"})
        made = await client.get("/hello")
    assert given.headers["x-request-id"] == "abc123"
    assert len(made.headers["x-request-id"]) == 32


@pytest.mark.parametrize(
    "given",
    [b"caf\xc3\xa9", b"two words", b"tab\there", b"\xff"],
    ids=["utf8", "space", "tab", "byte"],
)
async def test_a_request_id_that_is_no_token_is_replaced(given: bytes) -> None:
    # It is echoed and forwarded to other services, where it must stay a valid header.
    app = create_service_app(
        settings=SETTINGS, title="probe", routers=[], runtime=ServiceRuntime(), configure_logs=False
    )
    async with serve_app(app) as served, served.client() as client:
        response = await client.get("/healthz", headers={b"X-Request-ID": given})
    assert response.status_code == 200
    assert len(response.headers["x-request-id"]) == 32


def _body_router() -> APIRouter:
    router = APIRouter()

    @router.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    return router


async def test_a_body_over_the_limit_is_a_413_in_the_shared_shape() -> None:
    app = create_service_app(
        settings=SETTINGS,
        title="probe",
        routers=[_body_router()],
        runtime=ServiceRuntime(),
        configure_logs=False,
    )

    async def chunks() -> AsyncIterator[bytes]:
        # No Content-Length: the limit holds for a streamed body too.
        for _ in range(MAX_BODY_BYTES // 65536 + 1):
            yield b"x" * 65536

    async with serve_app(app) as served, served.client() as client:
        declared = await client.post("/echo", content=b"x" * (MAX_BODY_BYTES + 1))
        streamed = await client.post("/echo", content=chunks())
        at_limit = await client.post("/echo", content=b"x" * MAX_BODY_BYTES)
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json() == {"errors": [{"message": "Request body too large"}]}
    assert at_limit.json() == {"bytes": MAX_BODY_BYTES}


def _failing_router() -> APIRouter:
    router = APIRouter()

    @router.get("/port")
    async def port(request: Request) -> dict[str, int]:
        """The client's port as the server sees it: one port, one connection."""
        assert request.client is not None
        return {"port": request.client.port}

    @router.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret internals")

    @router.get("/after")
    async def after() -> JSONResponse:
        def fail() -> None:
            raise RuntimeError("failed after the response")

        return JSONResponse({"sent": True}, background=BackgroundTask(fail))

    @router.get("/half")
    async def half() -> StreamingResponse:
        async def body() -> AsyncIterator[bytes]:
            yield b'{"partial": '
            raise RuntimeError("failed mid-body")

        return StreamingResponse(body(), media_type="application/json")

    return router


def _failing_app() -> FastAPI:
    """A service app with the failing routes, built as every service is."""
    return create_service_app(
        settings=SETTINGS,
        title="probe",
        routers=[_failing_router()],
        runtime=ServiceRuntime(),
        configure_logs=False,
    )


def _one_connection(url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=1))


async def test_unexpected_error_is_a_500_that_leaves_the_connection_usable() -> None:
    app = _failing_app()
    async with serve_app(app) as served, _one_connection(served.url) as client:
        before = await client.get("/port")
        failed = await client.get("/boom", headers={"X-Request-ID": "req-500"})
        after = await client.get("/port")
        assert len(served.server.server_state.connections) == 1
    assert failed.status_code == 500
    assert failed.json() == {"errors": [{"message": "Something went wrong"}]}
    assert "secret" not in failed.text
    assert failed.headers["x-request-id"] == "req-500"
    assert failed.headers.get("connection") != "close"
    assert after.status_code == 200
    # The same client port: the request after the 500 went over the same connection.
    assert after.json() == before.json()


class _Lines(logging.Handler):
    """Log lines formatted as the services write them, when they are written."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter("probe"))
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


async def test_unexpected_error_is_logged_with_the_request_id() -> None:
    app = _failing_app()
    lines = _Lines()
    errors_logger = logging.getLogger("ticketing.errors")
    errors_logger.addHandler(lines)
    try:
        async with serve_app(app) as served, served.client() as client:
            await client.get("/boom", headers={"X-Request-ID": "req-logged"})
    finally:
        errors_logger.removeHandler(lines)
    [line] = [line for line in lines.lines if line["message"] == "unhandled error"]
    assert line["request_id"] == "req-logged"
    assert line["path"] == "/boom"
    assert "secret internals" in str(line["exc"])


async def test_error_after_the_response_started_aborts_that_connection_only() -> None:
    app = _failing_app()
    async with serve_app(app) as served, _one_connection(served.url) as client:
        before = await client.get("/port")
        with pytest.raises(httpx.RemoteProtocolError):
            # A half-sent body must not pass for a whole one.
            await client.get("/half")
        after = await client.get("/port")
    assert after.status_code == 200
    assert after.json() != before.json()  # a new connection


async def test_error_after_the_response_is_complete_keeps_the_connection() -> None:
    app = _failing_app()
    async with serve_app(app) as served, _one_connection(served.url) as client:
        before = await client.get("/port")
        sent = await client.get("/after")
        after = await client.get("/port")
    assert sent.json() == {"sent": True}
    assert after.json() == before.json()


async def test_crashed_worker_is_restarted_and_stopped_on_shutdown() -> None:
    runs: list[int] = []

    async def worker(stopping: asyncio.Event) -> None:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("crash")
        await stopping.wait()

    runtime = ServiceRuntime(workers=[worker])
    app = create_service_app(
        settings=SETTINGS, title="probe", routers=[], runtime=runtime, configure_logs=False
    )
    async with serve_app(app):
        await wait_until(lambda: len(runs) >= 2, timeout=10)
    assert runtime.stopping.is_set()


def test_components_are_found_by_type_and_a_wiring_mistake_fails_loudly() -> None:
    from ticketing_common.state import Components

    class Special(ServiceSettings):
        pass

    special = Special(ENVIRONMENT="test")
    components = Components([special, "a string"])
    # By its own type, and by a base type when exactly one component is one.
    assert components.get(Special) is special
    assert components.get(ServiceSettings) is special
    assert components.find(Database) is None
    with pytest.raises(LookupError, match="no components of type Database"):
        components.get(Database)
    with pytest.raises(ValueError, match="two components of type str"):
        components.add("another string")


async def test_a_request_is_logged_only_with_the_access_log_on() -> None:
    lines = _Lines()
    app_logger = logging.getLogger("ticketing.app")
    app_logger.addHandler(lines)
    app_logger.setLevel(logging.INFO)
    try:
        for access_log in (False, True):
            settings = ServiceSettings(
                ENVIRONMENT="test", SERVICE_NAME="probe", ACCESS_LOG=access_log
            )
            app = create_service_app(
                settings=settings,
                title="probe",
                routers=[_failing_router()],
                runtime=ServiceRuntime(),
                configure_logs=False,
            )
            async with serve_app(app) as served, served.client() as client:
                await client.get("/port", headers={"X-Request-ID": f"access-{access_log}"})
    finally:
        app_logger.removeHandler(lines)
        app_logger.setLevel(logging.NOTSET)
    [line] = [line for line in lines.lines if line["message"] == "request"]
    assert (line["request_id"], line["path"], line["status"]) == ("access-True", "/port", 200)
