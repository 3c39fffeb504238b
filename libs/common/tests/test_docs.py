"""The API docs pages: Swagger UI served by the service itself (nothing loaded from a
third-party origin), off in production unless API_DOCS_ENABLED, on in development."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from ticketing_common.app import ServiceRuntime, create_service_app
from ticketing_common.settings import ServiceSettings
from ticketing_common.testing import serve_app

PREFIX = "/api/probe"
DOC_PATHS = ["/docs", "/openapi.json", f"{PREFIX}/docs", f"{PREFIX}/openapi.json"]
ASSETS = ["swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"]
_REFERENCE = re.compile(r"""(?:src|href|url)\s*[=:]\s*["']([^"']+)["']""")


@asynccontextmanager
async def _client(settings: ServiceSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_service_app(
        settings=settings,
        title="probe",
        routers=[],
        runtime=ServiceRuntime(),
        configure_logs=False,
        docs_prefix=PREFIX,
    )
    async with serve_app(app) as served, served.client() as client:
        yield client


async def _statuses(settings: ServiceSettings) -> dict[str, int]:
    async with _client(settings) as client:
        return {path: (await client.get(path)).status_code for path in DOC_PATHS}


async def test_production_serves_no_docs_page_by_default() -> None:
    settings = ServiceSettings(ENVIRONMENT="production", JWT_KEY=secrets.token_hex(32))

    assert await _statuses(settings) == dict.fromkeys(DOC_PATHS, 404)


async def test_production_serves_the_docs_when_enabled() -> None:
    settings = ServiceSettings(
        ENVIRONMENT="production", JWT_KEY=secrets.token_hex(32), API_DOCS_ENABLED=True
    )

    assert await _statuses(settings) == dict.fromkeys(DOC_PATHS, 200)


@pytest.mark.parametrize("environment", ["development", "test"])
async def test_development_serves_the_docs(environment: str) -> None:
    settings = ServiceSettings(ENVIRONMENT=environment)

    assert await _statuses(settings) == dict.fromkeys(DOC_PATHS, 200)


@pytest.mark.parametrize("page", ["/docs", f"{PREFIX}/docs"])
async def test_the_docs_page_loads_nothing_from_another_origin(page: str) -> None:
    async with _client(ServiceSettings(ENVIRONMENT="test")) as client:
        html = (await client.get(page)).text
        references = _REFERENCE.findall(html)
        loaded = {ref: (await client.get(ref)) for ref in references}

    assert "http://" not in html
    assert "https://" not in html
    assert {f"{PREFIX}/docs/{name}" for name in ASSETS} <= set(references)
    for reference, response in loaded.items():
        assert reference.startswith("/"), reference  # this origin, never another
        assert response.status_code == 200, reference
    assert (
        loaded[f"{PREFIX}/docs/swagger-ui-bundle.js"]
        .headers["content-type"]
        .startswith("text/javascript")
    )
    assert "SwaggerUIBundle" in loaded[f"{PREFIX}/docs/swagger-ui-bundle.js"].text


async def test_redoc_which_only_loads_from_a_cdn_is_not_served() -> None:
    async with _client(ServiceSettings(ENVIRONMENT="test")) as client:
        assert (await client.get("/redoc")).status_code == 404
