"""The registry is the single route table: prefixes per SPEC §2, catch-all last."""

from __future__ import annotations

from pathlib import Path

import pytest

from ticketing_devstack.registry import (
    CATCH_ALL,
    KNOWN_SERVICES,
    Service,
    gateway_routes,
    installed_services,
)


def test_gateway_routes_follow_spec_prefixes_with_web_as_catch_all_last() -> None:
    routes = gateway_routes()

    assert routes[-1] == (CATCH_ALL, "web")
    assert sorted(routes[:-1]) == sorted(
        [
            ("/api/users", "auth"),
            ("/api/tickets", "tickets"),
            ("/api/orders", "orders"),
            ("/api/payments", "payments"),
        ]
    )


def test_services_without_a_path_prefix_are_not_routed() -> None:
    routed = {name for _, name in gateway_routes()}

    assert "expiration" not in routed


def test_deeper_prefix_is_matched_before_its_parent_whatever_the_registry_order() -> None:
    services = [
        Service(name="web", package="w", path_prefix=CATCH_ALL),
        Service(name="users", package="u", path_prefix="/api/users"),
        Service(name="admin", package="a", path_prefix="/api/users/admin"),
    ]

    assert gateway_routes(services) == [
        ("/api/users/admin", "admin"),
        ("/api/users", "users"),
        ("/", "web"),
    ]


def test_every_service_owning_a_database_gets_its_own_database_name() -> None:
    names = [s.database_name for s in KNOWN_SERVICES if s.database]

    assert len(names) == len(set(names)) == 4
    assert "ticketing_auth" in names


def test_a_service_whose_package_is_not_installed_is_absent() -> None:
    ghost = Service(name="ghost", package="ticketing_no_such_service_xyz", path_prefix="/api/x")

    assert installed_services([ghost]) == ()


def test_a_service_whose_app_module_is_importable_is_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "ticketing_fake_service"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "app.py").write_text("def create_app(): ...\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    fake = Service(name="fake", package="ticketing_fake_service", path_prefix="/api/fake")
    half_written = Service(name="half", package="ticketing_devstack", path_prefix="/api/half")

    assert installed_services([fake, half_written]) == (fake,)
