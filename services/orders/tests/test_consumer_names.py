"""Orders' durable consumers are named after its ``SERVICE_NAME``, which defaults to the
spec's name: a second deployment on the same broker (``SERVICE_NAME=orders-b``) keeps
consumers, and so a position in the stream, of its own."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ticketing_common.events.bus import EventBus
from ticketing_common.testing import serve_app, wait_until
from ticketing_orders.app import create_app
from ticketing_orders.settings import Settings


def consumers_named(service: str) -> set[str]:
    # One consumer per event orders listens to.
    return {
        f"{service}-ticket-created",
        f"{service}-ticket-updated",
        f"{service}-ticket-withdrawn",
        f"{service}-expiration-complete",
        f"{service}-payment-created",
    }


async def durable_consumers(bus: EventBus) -> set[str]:
    infos = await bus.js.consumers_info(bus.subjects.stream)
    return {info.config.durable_name for info in infos if info.config.durable_name}


async def test_consumers_are_named_after_the_configured_service_name(
    make_settings: Callable[..., Settings], bus: EventBus
) -> None:
    async with serve_app(create_app(make_settings(SERVICE_NAME="orders-b"))):
        expected = consumers_named("orders-b")

        async def made() -> bool:
            return await durable_consumers(bus) == expected

        await wait_until(made)


async def test_without_a_service_name_consumers_are_named_after_the_spec(
    make_settings: Callable[..., Settings], bus: EventBus, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SERVICE_NAME", raising=False)
    configured = make_settings().model_dump(exclude={"SERVICE_NAME"})
    settings = Settings(**configured)
    assert "SERVICE_NAME" not in settings.model_fields_set

    async with serve_app(create_app(settings)):
        expected = consumers_named("orders")

        async def made() -> bool:
            return await durable_consumers(bus) == expected

        await wait_until(made)
