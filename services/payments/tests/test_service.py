"""The payments app as a service: readiness, its OpenAPI under its own prefix."""

from __future__ import annotations

import httpx

from ticketing_common.testing import ServedApp


async def test_ready_when_database_and_broker_are_reachable(
    client: httpx.AsyncClient, payments: ServedApp
) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


async def test_docs_and_openapi_are_served_under_the_payments_prefix(
    client: httpx.AsyncClient,
) -> None:
    docs = await client.get("/api/payments/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    openapi = (await client.get("/api/payments/openapi.json")).json()
    assert "post" in openapi["paths"]["/api/payments"]
