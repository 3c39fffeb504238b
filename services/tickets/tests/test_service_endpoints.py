"""Health, readiness and the API docs, directly and under the gateway's /api/tickets prefix."""

from __future__ import annotations

import httpx
import pytest


async def test_health_and_readiness_with_database_and_broker_up(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/healthz")).status_code == 200
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text


@pytest.mark.parametrize("prefix", ["", "/api/tickets"])
async def test_openapi_document_and_docs_are_served(client: httpx.AsyncClient, prefix: str) -> None:
    document = await client.get(f"{prefix}/openapi.json")
    assert document.status_code == 200
    assert "/api/tickets/{ticket_id}" in document.json()["paths"]
    docs = await client.get(f"{prefix}/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
