"""The spec-driven test harness (``ticketing_common.testing.service``) on a service of
its own: settings filled in from what the spec needs, served apps, several instances."""

from __future__ import annotations

from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends

from ticketing_common.settings import BusSettings, RedisSettings, ServiceSettings
from ticketing_common.spec import ServiceSpec
from ticketing_common.state import provided
from ticketing_common.testing import MakeSettings, ServedApp, ServiceHarness


class ProbeSettings(BusSettings, RedisSettings):
    """A service on the bus and Redis, without a database."""


router = APIRouter()


@router.get("")
async def whoami(
    settings: Annotated[ServiceSettings, Depends(provided(ServiceSettings))],
) -> dict[str, str]:
    return {"service": settings.SERVICE_NAME, "level": settings.LOG_LEVEL}


PROBE = ServiceSpec(
    name="probe",
    package="ticketing_common",
    title="Probe",
    settings=ProbeSettings,
    api_prefix="/api/probe",
    routers=[router],
)


@pytest.fixture(scope="module")
def service_spec() -> ServiceSpec[ProbeSettings]:
    return PROBE


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"LOG_LEVEL": "WARNING"}


def test_settings_are_what_the_spec_needs_on_the_tests_servers_and_namespace(
    settings: ProbeSettings, nats_url: str, redis_url: str, namespace: str
) -> None:
    servers = (settings.NATS_URL, settings.NATS_NAMESPACE, settings.REDIS_URL)
    assert servers == (nats_url, namespace, redis_url)
    assert settings.ENVIRONMENT == "test"
    assert settings.SERVICE_NAME == "probe"
    assert settings.LOG_LEVEL == "WARNING"  # the module's settings_overrides


def test_a_tests_own_overrides_go_over_the_modules(make_settings: MakeSettings) -> None:
    settings = make_settings(LOG_LEVEL="ERROR", SERVICE_NAME="probe-2")
    assert isinstance(settings, ProbeSettings)
    assert (settings.LOG_LEVEL, settings.SERVICE_NAME) == ("ERROR", "probe-2")


async def test_the_served_app_is_ready_under_its_prefix(client: httpx.AsyncClient) -> None:
    assert (await client.get("/readyz")).status_code == 200
    response = await client.get("/api/probe")
    assert response.json() == {"service": "probe", "level": "WARNING"}


async def test_the_harness_serves_more_instances_with_their_own_overrides(
    harness: ServiceHarness, served: ServedApp
) -> None:
    async with harness.serve(PROBE, LOG_LEVEL="ERROR") as other:
        assert other.url != served.url
        async with other.client() as client:
            response = await client.get("/api/probe")
    assert response.json() == {"service": "probe", "level": "ERROR"}


async def test_a_spec_without_a_database_has_no_migrated_url(harness: ServiceHarness) -> None:
    with pytest.raises(TypeError, match="no database"):
        await harness.database_url(PROBE)
