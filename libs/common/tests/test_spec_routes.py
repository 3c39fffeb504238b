"""A spec's prefixes: its routers are mounted under ``api_prefix``, and the routers of
``also_routed`` under their own prefixes, all in its API docs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from fastapi import APIRouter

from ticketing_common.settings import ServiceSettings
from ticketing_common.spec import CATCH_ALL, ServiceSpec

orders = APIRouter()
checkins = APIRouter()


@orders.get("/{order_id}")
async def an_order(order_id: str) -> str:
    return order_id


@checkins.post("")
async def a_check_in() -> str:
    return "admitted"


def _spec(
    api_prefix: str | None = None,
    routers: Sequence[APIRouter] = (),
    also_routed: Mapping[str, Sequence[APIRouter]] | None = None,
) -> ServiceSpec[ServiceSettings]:
    return ServiceSpec(
        name="probe",
        package="ticketing_common",
        title="Probe",
        settings=ServiceSettings,
        api_prefix=api_prefix,
        routers=routers,
        also_routed=also_routed or {},
    )


def test_routers_of_another_prefix_are_mounted_there_and_documented() -> None:
    spec = _spec(
        api_prefix="/api/orders", routers=[orders], also_routed={"/api/checkins": [checkins]}
    )

    app = spec.create_app(ServiceSettings(ENVIRONMENT="test"))

    assert spec.prefixes == ("/api/orders", "/api/checkins")
    assert set(app.openapi()["paths"]) == {"/api/orders/{order_id}", "/api/checkins"}


def test_a_service_without_a_prefix_has_no_prefixes_and_no_other_ones() -> None:
    assert _spec().prefixes == ()
    for api_prefix in (None, CATCH_ALL):
        with pytest.raises(TypeError, match="no API prefix of its own"):
            _spec(api_prefix=api_prefix, also_routed={"/api/checkins": [checkins]})
    with pytest.raises(TypeError, match="twice"):
        _spec(api_prefix="/api/orders", also_routed={"/api/orders": [checkins]})
