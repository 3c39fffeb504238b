"""The service app base: health, readiness against real servers, request ids, workers."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import APIRouter

from ticketing_common.app import ServiceRuntime, create_service_app
from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
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


def test_app_state_is_read_typed_and_a_wrong_type_fails_loudly() -> None:
    from fastapi import FastAPI
    from starlette.requests import Request

    from ticketing_common.state import app_state

    app = FastAPI()
    app.state.settings = SETTINGS
    app.state.database = "not a database"
    request = Request({"type": "http", "app": app})
    assert app_state(request, "settings", ServiceSettings) is SETTINGS
    with pytest.raises(TypeError, match=r"app\.state\.database is str"):
        app_state(request, "database", Database)
