"""The Caddy config generated from the route table (as Caddy reads it: JSON)."""

from __future__ import annotations

import json
from pathlib import Path

from ticketing_devstack.gateway import caddy_config, caddy_env
from ticketing_devstack.registry import gateway_routes, installed_specs

# The real route table (SPEC §2, checked in test_registry.py).
ROUTES = gateway_routes(installed_specs())
ALL_UP = {"auth": 9001, "tickets": 9002, "orders": 9003, "payments": 9004, "web": 9005}


def _caddy_json(upstreams: dict[str, int], tmp_path: Path, port: int = 8000) -> str:
    config = caddy_config(
        listen_port=port, routes=ROUTES, upstreams=upstreams, storage_dir=tmp_path
    )
    return json.dumps(config)


def test_each_prefix_matches_itself_and_its_subpaths_and_proxies_to_its_service(
    tmp_path: Path,
) -> None:
    doc = json.loads(_caddy_json(ALL_UP, tmp_path))

    routes = doc["apps"]["http"]["servers"]["gateway"]["routes"]
    matched = {
        tuple(route["match"][0]["path"]): route["handle"][-1]["upstreams"][0]["dial"]
        for route in routes
        if "match" in route and "upstreams" in route["handle"][-1]
    }
    assert matched == {
        ("/api/users", "/api/users/*"): "127.0.0.1:9001",
        ("/api/tickets", "/api/tickets/*"): "127.0.0.1:9002",
        ("/api/orders", "/api/orders/*"): "127.0.0.1:9003",
        ("/api/checkins", "/api/checkins/*"): "127.0.0.1:9003",
        ("/api/payments", "/api/payments/*"): "127.0.0.1:9004",
    }


def test_catch_all_route_is_last_and_has_no_matcher(tmp_path: Path) -> None:
    doc = json.loads(_caddy_json(ALL_UP, tmp_path))

    routes = doc["apps"]["http"]["servers"]["gateway"]["routes"]
    assert "match" not in routes[-1]
    assert routes[-1]["handle"][-1]["upstreams"] == [{"dial": "127.0.0.1:9005"}]
    assert all("match" in route for route in routes[:-1])


def test_without_web_unmatched_paths_get_a_json_404_and_absent_services_no_route(
    tmp_path: Path,
) -> None:
    doc = json.loads(_caddy_json({"auth": 9001}, tmp_path))

    routes = doc["apps"]["http"]["servers"]["gateway"]["routes"]
    assert len(routes) == 3
    assert routes[1]["match"] == [{"path": ["/api/users", "/api/users/*"]}]
    fallback = routes[2]
    assert "match" not in fallback
    assert fallback["handle"][0]["handler"] == "static_response"
    assert fallback["handle"][0]["status_code"] == 404
    assert json.loads(fallback["handle"][0]["body"]) == {"errors": [{"message": "Not found"}]}


def test_metrics_are_never_routed_whatever_services_run(tmp_path: Path) -> None:
    for upstreams in (ALL_UP, {"auth": 9001}, {}):
        doc = json.loads(_caddy_json(upstreams, tmp_path))

        first = doc["apps"]["http"]["servers"]["gateway"]["routes"][0]
        assert first["match"] == [{"path": ["/metrics", "/metrics/*"]}]
        assert first["handle"][0]["status_code"] == 404
        assert first["terminal"] is True


def test_gateway_listens_on_loopback_only_without_admin_endpoint_or_https(
    tmp_path: Path,
) -> None:
    doc = json.loads(_caddy_json({}, tmp_path, port=8123))

    server = doc["apps"]["http"]["servers"]["gateway"]
    assert server["listen"] == ["127.0.0.1:8123"]
    assert server["automatic_https"] == {"disable": True}
    assert doc["admin"] == {"disabled": True, "config": {"persist": False}}
    assert doc["storage"] == {"module": "file_system", "root": str(tmp_path)}


def test_caddy_home_config_and_data_dirs_are_inside_the_given_dir(tmp_path: Path) -> None:
    env = caddy_env(tmp_path, base={"HOME": "/root", "PATH": "/bin"})

    assert env["PATH"] == "/bin"
    for key in ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME"):
        assert Path(env[key]).is_relative_to(tmp_path)


def test_caddy_runs_go_on_one_thread_with_a_lazier_collector_unless_told_otherwise(
    tmp_path: Path,
) -> None:
    env = caddy_env(tmp_path, base={"PATH": "/bin"})
    assert (env["GOMAXPROCS"], env["GOGC"]) == ("1", "400")

    told = caddy_env(tmp_path, base={"PATH": "/bin", "GOMAXPROCS": "4"})
    assert (told["GOMAXPROCS"], told["GOGC"]) == ("4", "400")
