"""The service registry: which services exist, what they need, and the gateway's route table.

This is the one place that says which path prefix goes to which service; the
Caddy config (``gateway.py``) is generated from it and the Kubernetes ingress is
checked against it. A service whose package is not installed is simply absent.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass

CATCH_ALL = "/"
"""The prefix of the service that receives every path no other prefix matches."""


@dataclass(frozen=True)
class Service:
    """One service of the system, as the dev stack and the gateway see it."""

    name: str
    package: str
    database: bool = False
    path_prefix: str | None = None
    """``/api/users`` style prefix routed to this service, ``CATCH_ALL`` or None (no HTTP)."""
    uses_nats: bool = False
    uses_redis: bool = False
    stripe_secret: bool = False
    """Charges cards: gets ``STRIPE_SECRET_KEY`` (and ``STRIPE_API_BASE`` for the sandbox)."""
    stripe_publishable: bool = False
    """Tokenises cards in the browser: gets ``STRIPE_PUBLISHABLE_KEY`` when there is one."""

    @property
    def app_factory(self) -> str:
        """The ``module:callable`` uvicorn runs with ``--factory``."""
        return f"{self.package}.app:create_app"

    @property
    def database_name(self) -> str:
        return f"ticketing_{self.name}"

    @property
    def is_catch_all(self) -> bool:
        return self.path_prefix == CATCH_ALL

    def is_installed(self) -> bool:
        """True when the service's app module can be imported in this environment."""
        try:
            return importlib.util.find_spec(f"{self.package}.app") is not None
        except ModuleNotFoundError:  # the parent package itself is missing
            return False


KNOWN_SERVICES: tuple[Service, ...] = (
    Service(
        name="auth",
        package="ticketing_auth",
        database=True,
        path_prefix="/api/users",
        uses_nats=True,
    ),
    Service(
        name="tickets",
        package="ticketing_tickets",
        database=True,
        path_prefix="/api/tickets",
        uses_nats=True,
    ),
    Service(
        name="orders",
        package="ticketing_orders",
        database=True,
        path_prefix="/api/orders",
        uses_nats=True,
    ),
    Service(
        name="payments",
        package="ticketing_payments",
        database=True,
        path_prefix="/api/payments",
        uses_nats=True,
        stripe_secret=True,
    ),
    Service(name="expiration", package="ticketing_expiration", uses_nats=True, uses_redis=True),
    # NATS for session revocations: it verifies the session cookie itself.
    Service(
        name="web",
        package="ticketing_web",
        path_prefix=CATCH_ALL,
        uses_nats=True,
        stripe_publishable=True,
    ),
)


def installed_services(known: Iterable[Service] = KNOWN_SERVICES) -> tuple[Service, ...]:
    """The known services whose code is installed, in registry order."""
    return tuple(service for service in known if service.is_installed())


def gateway_routes(services: Iterable[Service] = KNOWN_SERVICES) -> list[tuple[str, str]]:
    """``(path_prefix, service_name)`` pairs in matching order, catch-all (``/``) last.

    Deeper prefixes come first (``/api/users/admin`` before ``/api/users``), so the
    order never depends on the registry's order; otherwise the registry's order is
    kept. Services without a prefix are left out.
    """
    routed = [(s.path_prefix, s.name) for s in services if s.path_prefix is not None]
    prefixed = sorted(
        ((prefix, name) for prefix, name in routed if prefix != CATCH_ALL),
        key=lambda route: -route[0].rstrip("/").count("/"),
    )
    catch_all = [(prefix, name) for prefix, name in routed if prefix == CATCH_ALL]
    return prefixed + catch_all
