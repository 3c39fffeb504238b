"""What environment each child of ``ticketing up`` gets: a pure function of the
services' specs, the caller's environment and where things run.

Every service gets the caller's environment (minus what only some may see), the
development settings, the addresses of the servers it needs, its own database and
port, its own NATS user and password when the stack runs NATS, and the Stripe
settings only where its spec says it charges cards or tokenises them, and the address of
the stack's SMTP catcher when the stack runs one. The Stripe sandbox and the catcher get
the caller's environment without any Stripe setting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ticketing_common.embedded import HOST, with_database
from ticketing_common.spec import ServiceSpec

# The sandbox takes any test-mode secret key (each is an account of its own there).
SANDBOX_SECRET_KEY = "sk_test_sandbox"  # noqa: S105 - not a secret: the sandbox's test key
# Given to the services that need them only (see stripe_environment), never to all.
STRIPE_VARIABLES = ("STRIPE_SECRET_KEY", "STRIPE_API_BASE", "STRIPE_PUBLISHABLE_KEY")
# Set (by `ticketing up --traces`): each service writes its spans to <dir>/<name>.jsonl.
TRACES_DIR_VARIABLE = "TRACES_DIR"

Specs = Sequence[ServiceSpec[Any]]


@dataclass(frozen=True)
class Addresses:
    """Where the children find what the stack runs; None: not running."""

    gateway_url: str
    ports: Mapping[str, int] = field(default_factory=dict)
    """Each service's port, by name."""
    nats_url: str | None = None
    database_admin_url: str | None = None
    redis_url: str | None = None
    """With its password when the stack runs it."""
    stripe_sandbox_url: str | None = None
    smtp_port: int | None = None
    """The mail catcher's SMTP port on 127.0.0.1, when the stack runs it."""
    nats_passwords: Mapping[str, str] = field(default_factory=dict)
    """Each service's NATS password, by name, when the stack's NATS has a user for each
    (``ticketing_common.natsauth``); empty for an external server."""


@dataclass(frozen=True)
class Shared:
    """What every service gets alike."""

    jwt_key: str
    expiration_window: int = 900


def charges_cards(specs: Specs) -> bool:
    return any(spec.stripe_secret for spec in specs)


def needs_stripe_sandbox(environ: Mapping[str, str], specs: Specs) -> bool:
    """The sandbox stands in for Stripe when a service charges cards and no secret key is
    given; with a key, Stripe itself is used and no sandbox starts."""
    has_key = bool(environ.get("STRIPE_SECRET_KEY", "").strip())
    return not has_key and charges_cards(specs)


def stripe_environment(
    spec: ServiceSpec[Any], environ: Mapping[str, str], sandbox_url: str | None
) -> dict[str, str]:
    """The Stripe settings of one service: the secret key only where cards are charged
    (the sandbox's key and address when it runs, else the caller's key unchanged), the
    publishable key only where cards are tokenised. With the sandbox no publishable key
    is given: Stripe.js would make tokens that only Stripe itself can charge."""
    env: dict[str, str] = {}
    if spec.stripe_secret:
        if sandbox_url is not None:
            env["STRIPE_SECRET_KEY"] = SANDBOX_SECRET_KEY
            env["STRIPE_API_BASE"] = sandbox_url
        else:
            env.update((name, environ[name]) for name in STRIPE_VARIABLES[:2] if environ.get(name))
    publishable = environ.get("STRIPE_PUBLISHABLE_KEY")
    if spec.stripe_publishable and publishable and sandbox_url is None:
        env["STRIPE_PUBLISHABLE_KEY"] = publishable
    return env


def sends_mail(specs: Specs) -> bool:
    return any("SMTP_HOST" in spec.settings.model_fields for spec in specs)


def needs_mail_catcher(environ: Mapping[str, str], specs: Specs) -> bool:
    """The catcher stands in for a mail server when a service sends mail and no
    ``SMTP_HOST`` is given; with one, mail goes there and no catcher starts."""
    has_host = bool(environ.get("SMTP_HOST", "").strip())
    return not has_host and sends_mail(specs)


def without_stripe(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` without the Stripe settings, which only some children may see."""
    return {name: value for name, value in environ.items() if name not in STRIPE_VARIABLES}


def sandbox_environment(environ: Mapping[str, str]) -> dict[str, str]:
    return dict(without_stripe(environ), PYTHONUNBUFFERED="1")


def mail_catcher_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """Like the sandbox's: the caller's environment, no Stripe setting."""
    return sandbox_environment(environ)


def service_environments(
    specs: Specs, environ: Mapping[str, str], addresses: Addresses, shared: Shared
) -> dict[str, dict[str, str]]:
    """Each service's environment, by name: ``environ`` plus what the stack decided."""
    common = without_stripe(environ)
    # The admin URL is not a service's database; each service gets its own below.
    common.pop("DATABASE_URL", None)
    common.update(
        ENVIRONMENT="development",
        JWT_KEY=shared.jwt_key,
        EXPIRATION_WINDOW_SECONDS=str(shared.expiration_window),
        GATEWAY_URL=addresses.gateway_url,
        PYTHONUNBUFFERED="1",
    )
    # Links in mails point to the site as this stack serves it, unless told otherwise.
    common.setdefault("SITE_URL", addresses.gateway_url)
    if addresses.smtp_port is not None:
        # The catcher speaks plain SMTP on 127.0.0.1 and needs no account.
        common.update(SMTP_HOST=HOST, SMTP_PORT=str(addresses.smtp_port), SMTP_STARTTLS="false")
    if addresses.nats_url:
        common["NATS_URL"] = addresses.nats_url
    if addresses.redis_url:
        common["REDIS_URL"] = addresses.redis_url
    envs = {}
    for spec in specs:
        env = dict(common, SERVICE_NAME=spec.name, PORT=str(addresses.ports[spec.name]))
        if spec.api_prefix is not None:
            # Caddy replaces a client's X-Forwarded-For with the real address, so services
            # behind it may use the header (e.g. auth's per-client sign-in throttle).
            env["TRUST_PROXY_HEADERS"] = "true"
        if spec.uses_nats and spec.name in addresses.nats_passwords:
            # Its own user, allowed only the subjects it uses.
            env["NATS_USER"] = spec.name
            env["NATS_PASSWORD"] = addresses.nats_passwords[spec.name]
        if spec.needs_database and addresses.database_admin_url:
            env["DATABASE_URL"] = with_database(addresses.database_admin_url, spec.database_name)
        env.update(stripe_environment(spec, environ, addresses.stripe_sandbox_url))
        if environ.get(TRACES_DIR_VARIABLE):
            env["TRACES_FILE"] = str(Path(environ[TRACES_DIR_VARIABLE]) / f"{spec.name}.jsonl")
        envs[spec.name] = env
    return envs
