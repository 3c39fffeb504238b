"""The API docs pages (Swagger UI loads a third-party script onto the site's origin)
are off in production unless API_DOCS_ENABLED, and on in development."""

from __future__ import annotations

import secrets

import pytest

from ticketing_common.app import ServiceRuntime, create_service_app
from ticketing_common.settings import ServiceSettings
from ticketing_common.testing import serve_app

PREFIX = "/api/probe"
DOC_PATHS = ["/docs", "/redoc", "/openapi.json", f"{PREFIX}/docs", f"{PREFIX}/openapi.json"]


async def _statuses(settings: ServiceSettings) -> dict[str, int]:
    app = create_service_app(
        settings=settings,
        title="probe",
        routers=[],
        runtime=ServiceRuntime(),
        configure_logs=False,
        docs_prefix=PREFIX,
    )
    async with serve_app(app) as served, served.client() as client:
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
