"""The local gateway: Caddy's JSON config generated from the services' route table.

Owns the config only (what Caddy listens on, where each path goes, where Caddy
may write); starting the process is ``stack.py``'s job. Caddy runs with its
admin endpoint disabled, no automatic HTTPS and every file it writes inside the
data directory.

While a service restarts, Caddy's active health check (``/readyz``, every second,
two failures in a row) takes it out, and a request that arrives meanwhile is held
and retried for up to ``RETRY_SECONDS`` (``try_duration``), so one that comes
during a restart of a few seconds still succeeds. Caddy only retries what is safe: a request whose
connection could not be made, or a GET whose connection broke. After that the
client gets a 503 (502 for a broken connection) in the shared error shape.

Caddy bounds what a client may send before a service sees it: a request body over
the services' own limit (``MAX_BODY_BYTES``) is a 413 in the shared error shape,
and a request line plus headers over ``MAX_HEADER_BYTES`` a 431.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypeAlias

from ticketing_common.app import MAX_BODY_BYTES
from ticketing_common.embedded import go_runtime_env
from ticketing_common.metrics import METRICS_PATH
from ticketing_common.spec import CATCH_ALL

HOST = "127.0.0.1"

# A JSON value, as far as the config needs one.
Json: TypeAlias = str | int | float | bool | list["Json"] | dict[str, "Json"] | None

NOT_FOUND_BODY = '{"errors": [{"message": "Not found"}]}'
UNAVAILABLE_BODY = (
    '{"errors": [{"message": "The service is unavailable or restarting; try again shortly"}]}'
)
TOO_LARGE_BODY = '{"errors": [{"message": "Request body too large"}]}'
# Request line and headers together: room for a long URL and a full cookie jar, far
# below Go's default of 1 MiB that a service would otherwise have to parse.
MAX_HEADER_BYTES = 32 * 1024
RETRY_SECONDS = 5.0
HEALTH_CHECK_URI = "/readyz"
# How long Caddy keeps an idle connection to a service. Services keep theirs open
# longer (uvicorn --timeout-keep-alive, see stack.py), so it is always Caddy that closes
# one, never a service under a request Caddy is just sending on it.
UPSTREAM_IDLE_TIMEOUT_SECONDS = 30


def _path_matchers(prefix: str) -> list[str]:
    """``/api/users`` matches itself and everything below it, but not ``/api/usersX``."""
    prefix = prefix.rstrip("/")
    return [prefix, f"{prefix}/*"]


def _proxy(upstream_port: int, retry_seconds: float) -> Json:
    return {
        "handler": "reverse_proxy",
        "upstreams": [{"dial": f"{HOST}:{upstream_port}"}],
        "load_balancing": {"try_duration": f"{retry_seconds}s", "try_interval": "250ms"},
        "health_checks": {
            # Two failed checks in a row, so one slow answer under load takes nothing out;
            # a crashed service refuses connections, which are retried anyway.
            "active": {
                "uri": HEALTH_CHECK_URI,
                "interval": "1s",
                "timeout": "3s",
                "fails": 2,
                "passes": 1,
            },
        },
        "transport": {
            "protocol": "http",
            "keep_alive": {"idle_timeout": f"{UPSTREAM_IDLE_TIMEOUT_SECONDS}s"},
        },
    }


def _not_found() -> Json:
    return {
        "handler": "static_response",
        "status_code": 404,
        "headers": {"Content-Type": ["application/json"]},
        "body": NOT_FOUND_BODY,
    }


def _error_routes() -> list[Json]:
    """What the client gets when Caddy itself fails a request (a body over the limit, no
    upstream available, the connection to it broke): the status Caddy chose, in the
    shared error shape."""
    return [
        {
            "match": [{"vars": {"{http.error.status_code}": ["413"]}}],
            "handle": [
                {
                    "handler": "static_response",
                    "status_code": 413,
                    "headers": {"Content-Type": ["application/json"], "Connection": ["close"]},
                    "body": TOO_LARGE_BODY,
                }
            ],
        },
        {
            "handle": [
                {
                    "handler": "static_response",
                    "status_code": "{http.error.status_code}",
                    "headers": {"Content-Type": ["application/json"]},
                    "body": UNAVAILABLE_BODY,
                }
            ]
        },
    ]


def caddy_config(
    *,
    listen_port: int,
    routes: Sequence[tuple[str, str]],
    upstreams: Mapping[str, int],
    storage_dir: Path,
    retry_seconds: float = RETRY_SECONDS,
) -> dict[str, Json]:
    """Caddy's config for ``routes`` (``(prefix, service)`` in matching order, as
    ``registry.gateway_routes`` returns them), proxying to ``upstreams[service]``
    on 127.0.0.1. Routes whose service has no upstream are left out; a path that
    matches nothing gets a 404 in the shared error shape."""
    # Every service serves its metrics at the same root path, which the catch-all would
    # route to web: they are for the scraper inside, never for the outside.
    caddy_routes: list[Json] = [
        {
            "match": [{"path": [METRICS_PATH, f"{METRICS_PATH}/*"]}],
            "handle": [_not_found()],
            "terminal": True,
        }
    ]
    has_catch_all = False
    for prefix, service in routes:
        if service not in upstreams:
            continue
        route: dict[str, Json] = {
            "handle": [
                # The same limit as the services', enforced before a byte reaches them.
                {"handler": "request_body", "max_size": MAX_BODY_BYTES},
                _proxy(upstreams[service], retry_seconds),
            ],
            "terminal": True,
        }
        if prefix == CATCH_ALL:
            has_catch_all = True
        else:
            route["match"] = [{"path": list[Json](_path_matchers(prefix))}]
        caddy_routes.append(route)
    if not has_catch_all:
        # Without a route Caddy would answer 200 with an empty body.
        caddy_routes.append({"handle": [_not_found()]})
    return {
        "admin": {"disabled": True, "config": {"persist": False}},
        "storage": {"module": "file_system", "root": str(storage_dir)},
        # "admin endpoint disabled" is on purpose, not worth a warning on every start.
        "logging": {"logs": {"default": {"level": "WARN", "exclude": ["admin"]}}},
        "apps": {
            "http": {
                # Shutting down must not wait for idle keep-alive connections forever.
                "grace_period": "5s",
                "servers": {
                    "gateway": {
                        "listen": [f"{HOST}:{listen_port}"],
                        "max_header_bytes": MAX_HEADER_BYTES,
                        "automatic_https": {"disable": True},
                        # Plain HTTP on loopback: HTTP/2 and HTTP/3 would need TLS.
                        "protocols": ["h1"],
                        "routes": caddy_routes,
                        "errors": {"routes": _error_routes()},
                    }
                },
            }
        },
    }


def write_caddy_config(caddy_dir: Path, config: Mapping[str, Json]) -> Path:
    """Write the config under ``caddy_dir`` and return its path."""
    caddy_dir.mkdir(parents=True, exist_ok=True)
    path = caddy_dir / "caddy.json"
    path.write_text(json.dumps(config, indent=2) + "\n")
    return path


def caddy_argv(binary: Path, config_path: Path) -> list[str]:
    return [str(binary), "run", "--config", str(config_path)]


def caddy_env(caddy_dir: Path, base: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Environment that keeps Caddy's home, config and data directories inside ``caddy_dir``."""
    env = go_runtime_env(base)
    env["HOME"] = str(caddy_dir / "home")
    env["XDG_CONFIG_HOME"] = str(caddy_dir / "config")
    env["XDG_DATA_HOME"] = str(caddy_dir / "data")
    return env
