"""The stack's services are the installed specs; the route table comes from their prefixes
(SPEC §2), deepest first, catch-all last."""

from __future__ import annotations

from fastapi import APIRouter

from ticketing_common.settings import ServiceSettings
from ticketing_common.spec import CATCH_ALL, ServiceSpec
from ticketing_devstack.registry import gateway_routes, installed_specs


def _spec(name: str, prefix: str | None) -> ServiceSpec[ServiceSettings]:
    return ServiceSpec(
        name=name,
        package=f"ticketing_{name}",
        title=name,
        settings=ServiceSettings,
        api_prefix=prefix,
    )


def test_the_installed_services_include_tickets_routed_at_its_prefix() -> None:
    routes = dict(gateway_routes(installed_specs()))

    assert routes["/api/tickets"] == "tickets"


def test_deeper_prefix_is_matched_before_its_parent_and_catch_all_last_whatever_the_order() -> None:
    specs = [
        _spec("web", CATCH_ALL),
        _spec("users", "/api/users"),
        _spec("admin", "/api/users/admin"),
        _spec("tickets", "/api/tickets"),
    ]

    assert gateway_routes(specs) == [
        ("/api/users/admin", "admin"),
        ("/api/users", "users"),
        ("/api/tickets", "tickets"),
        ("/", "web"),
    ]


def test_services_without_a_prefix_are_not_routed() -> None:
    assert gateway_routes([_spec("expiration", None), _spec("tickets", "/api/tickets")]) == [
        ("/api/tickets", "tickets")
    ]


def test_a_service_is_routed_at_each_of_its_prefixes() -> None:
    orders = ServiceSpec(
        name="orders",
        package="ticketing_orders",
        title="orders",
        settings=ServiceSettings,
        api_prefix="/api/orders",
        also_routed={"/api/checkins": [APIRouter()]},
    )

    assert orders.prefixes == ("/api/orders", "/api/checkins")
    assert gateway_routes([_spec("web", CATCH_ALL), orders]) == [
        ("/api/orders", "orders"),
        ("/api/checkins", "orders"),
        ("/", "web"),
    ]


def test_the_installed_orders_service_is_routed_at_checkins_too() -> None:
    routes = dict(gateway_routes(installed_specs()))

    assert routes["/api/checkins"] == "orders"
