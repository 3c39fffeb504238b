"""The stack's services and the gateway's route table, both from the services' specs.

The services are those installed in this environment, each described by its
``ServiceSpec`` (``ticketing_common.spec``): what it needs (a database, NATS, Redis)
follows from its settings class, where the gateway sends it from its ``prefixes``
(its ``api_prefix`` and any ``also_routed``).
The Caddy config (``gateway.py``) is generated from ``gateway_routes``, and the
Kubernetes ingress is checked against it (``tests/deploy``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ticketing_common.spec import CATCH_ALL, ServiceSpec, installed_specs

__all__ = ["CATCH_ALL", "gateway_routes", "installed_specs"]


def gateway_routes(services: Iterable[ServiceSpec[Any]]) -> list[tuple[str, str]]:
    """``(prefix, service_name)`` pairs in matching order, catch-all (``/``) last: one per
    prefix of each service (``spec.prefixes``: orders has ``/api/orders`` and
    ``/api/checkins``).

    Deeper prefixes come first (``/api/users/admin`` before ``/api/users``), so the
    order never depends on the order the services are given in; otherwise that
    order is kept. Services without a prefix are left out.
    """
    routed = [(prefix, s.name) for s in services for prefix in s.prefixes]
    prefixed = sorted(
        ((prefix, name) for prefix, name in routed if prefix != CATCH_ALL),
        key=lambda route: -route[0].rstrip("/").count("/"),
    )
    catch_all = [(prefix, name) for prefix, name in routed if prefix == CATCH_ALL]
    return prefixed + catch_all
