"""What a spec says it publishes and consumes is what its service does: the app builder
refuses listeners that differ from ``consumes``, and each installed service's code
makes exactly the events its spec ``publishes`` (NATS refuses any other)."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from typing import Any

import pytest

from ticketing_common.events.contracts import (
    PAYLOADS,
    Envelope,
    OrderCreated,
    TicketCreated,
    TicketUpdated,
)
from ticketing_common.events.listener import Listener
from ticketing_common.settings import BusSettings, ServiceSettings
from ticketing_common.spec import Parts, ServiceContext, ServiceSpec, installed_specs


async def ignore(_: Envelope[Any]) -> None:
    return None


def listening_to(*payload_types: Any) -> Any:
    def parts(_: ServiceContext[BusSettings]) -> Parts:
        return Parts(listeners=[Listener(payload_type, ignore) for payload_type in payload_types])

    return parts


def spec_consuming(*consumes: Any, listeners: tuple[Any, ...]) -> ServiceSpec[BusSettings]:
    return ServiceSpec(
        name="probe",
        package="ticketing_common",
        title="Probe",
        settings=BusSettings,
        consumes=consumes,
        parts=listening_to(*listeners),
    )


SETTINGS = BusSettings(ENVIRONMENT="test")


def test_listeners_matching_consumes_make_an_app() -> None:
    spec = spec_consuming(TicketCreated, OrderCreated, listeners=(OrderCreated, TicketCreated))
    assert spec.create_app(SETTINGS) is not None


@pytest.mark.parametrize(
    ("consumes", "listeners", "named"),
    [
        (
            (TicketCreated,),
            (TicketCreated, OrderCreated),
            "listened to but not in consumes: order:created",
        ),
        (
            (TicketCreated, TicketUpdated),
            (TicketCreated,),
            "in consumes but no listener: ticket:updated",
        ),
        ((TicketCreated,), (TicketCreated, TicketCreated), "listened to twice: ticket:created"),
    ],
)
def test_the_app_builder_refuses_listeners_that_differ_from_consumes(
    consumes: tuple[Any, ...], listeners: tuple[Any, ...], named: str
) -> None:
    spec = spec_consuming(*consumes, listeners=listeners)
    with pytest.raises(TypeError, match=named):
        spec.create_app(SETTINGS)


def test_only_a_service_on_the_bus_publishes_or_consumes_and_each_event_once() -> None:
    with pytest.raises(TypeError, match="no NATS_URL"):
        ServiceSpec(
            name="x", package="x", title="x", settings=ServiceSettings, publishes=(TicketCreated,)
        )
    with pytest.raises(TypeError, match="twice"):
        ServiceSpec(
            name="x",
            package="x",
            title="x",
            settings=BusSettings,
            consumes=(TicketCreated, TicketCreated),
        )


def events_made_by(package: str) -> set[str]:
    """The event payload classes a package's code constructs."""
    found = importlib.util.find_spec(package)
    assert found is not None
    assert found.submodule_search_locations is not None
    names = {payload.__name__ for payload in PAYLOADS.values()}
    made: set[str] = set()
    for directory in found.submodule_search_locations:
        for path in Path(directory).rglob("*.py"):
            tree = ast.parse(path.read_text(), str(path))
            called = (node.func for node in ast.walk(tree) if isinstance(node, ast.Call))
            made |= {f.id for f in called if isinstance(f, ast.Name) and f.id in names}
    return made


@pytest.mark.parametrize("spec", installed_specs(), ids=lambda spec: spec.name)
def test_each_service_publishes_exactly_the_events_its_code_makes(spec: ServiceSpec[Any]) -> None:
    assert events_made_by(spec.package) == {payload.__name__ for payload in spec.publishes}
