"""Health, readiness and the API docs, directly and under the gateway's /api/users prefix."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import httpx
import pytest

from ticketing_auth.app import create_app
from ticketing_auth.settings import Settings
from ticketing_common.embedded import free_port
from ticketing_common.events.bus import EventBus
from ticketing_common.testing import serve_app

ServeAuth = Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]


async def test_healthz_answers_200(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readyz_answers_200_when_the_database_is_reachable(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/readyz")

    assert (response.status_code, response.json()) == (200, {"status": "ready"})


async def test_readyz_answers_503_when_the_database_is_unreachable(
    make_settings: Callable[..., Settings], bus: EventBus
) -> None:
    settings = make_settings(DATABASE_URL=f"postgresql://nobody@127.0.0.1:{free_port()}/auth")
    async with serve_app(create_app(settings)) as served, served.client() as client:
        ready = await client.get("/readyz")
        alive = await client.get("/healthz")

    assert ready.status_code == 503
    assert ready.json() == {"errors": [{"message": "database unreachable"}]}
    assert alive.status_code == 200


@pytest.mark.parametrize("prefix", ["", "/api/users"])
async def test_openapi_document_is_served(client: httpx.AsyncClient, prefix: str) -> None:
    response = await client.get(f"{prefix}/openapi.json")

    assert response.status_code == 200
    paths = response.json()["paths"]
    assert {
        "/api/users/signup",
        "/api/users/signin",
        "/api/users/signout",
        "/api/users/currentuser",
        "/api/users/session/renew",
        "/api/users/signout/everywhere",
    } <= set(paths)


@pytest.mark.parametrize("prefix", ["", "/api/users"])
async def test_swagger_ui_is_served_and_loads_the_document_under_the_same_prefix(
    client: httpx.AsyncClient, prefix: str
) -> None:
    response = await client.get(f"{prefix}/docs")

    assert response.status_code == 200
    assert "text/html" in response.headers["content-type"]
    assert f"'{prefix}/openapi.json'" in response.text


async def test_every_response_carries_a_request_id(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/users/currentuser", headers={"X-Request-ID": "abc123"})

    assert response.headers["X-Request-ID"] == "abc123"
