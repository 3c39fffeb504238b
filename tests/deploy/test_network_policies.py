"""The NetworkPolicies allow exactly the traffic the services need, and nothing else.

From the rendered manifests (``kubectl kustomize``) the test computes which connections
the policies allow between every pod of the system, the ingress controller, Prometheus,
the cluster DNS, a pod of another namespace and addresses outside the cluster
(``tests/deploy/network.py``), and compares them with what each service needs according
to its spec (its database, NATS, Redis, whether the ingress routes to it, Stripe, a mail
server) and to the addresses its Deployment is configured with (web's gateway, the dev
overlay's Stripe sandbox).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.deploy.network import Connection, Endpoint, Network, pods_of
from tests.deploy.rendering import (
    DEFAULT_PORTS,
    LINK_VARIABLES,
    LOOPBACK_HOSTS,
    TARGETS,
    Rendered,
    environment,
    pod_spec,
)
from tests.deploy.specs import SPEC_IDS, SPECS, needs_every_spec
from ticketing_common.spec import ServiceSpec
from ticketing_devstack.registry import gateway_routes

INGRESS = Endpoint(
    "ingress-nginx-controller",
    "10.244.1.1",
    "ingress-nginx",
    {"app.kubernetes.io/name": "ingress-nginx", "app.kubernetes.io/component": "controller"},
    (("http", 80, "TCP"), ("https", 443, "TCP")),
)
PROMETHEUS = Endpoint(
    "prometheus",
    "10.244.2.1",
    "monitoring",
    {"app.kubernetes.io/name": "prometheus"},
    (("web", 9090, "TCP"),),
)
DNS = Endpoint(
    "coredns",
    "10.244.3.1",
    "kube-system",
    {"k8s-app": "kube-dns"},
    (("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")),
)
# Another namespace's pod wearing the labels of ours: selectors must not let it in.
STRANGER = Endpoint(
    "stranger",
    "10.244.4.1",
    "elsewhere",
    {"app.kubernetes.io/name": "auth"},
    (("http", 8000, "TCP"),),
)
STRIPE = Endpoint("a public address (IPv4)", "198.51.100.7", ports=(("", 443, "TCP"),))
STRIPE6 = Endpoint("a public address (IPv6)", "2001:db8::7", ports=(("", 443, "TCP"),))
SMTP = Endpoint("a public mail server", "203.0.113.25", ports=(("", 587, "TCP"),))
METADATA = Endpoint("the cloud's metadata service", "169.254.169.254", ports=(("", 80, "TCP"),))
NODE = Endpoint("a node", "10.0.0.9", ports=(("", 443, "TCP"), ("", 10250, "TCP")))
WORLD = (INGRESS, PROMETHEUS, DNS, STRANGER, STRIPE, STRIPE6, SMTP, METADATA, NODE)

# Services of other namespaces the manifests name (`<name>.<namespace>...`): their pods
# and the target port of each service port.
OTHER_NAMESPACES = {("ingress-nginx-controller", "ingress-nginx"): (INGRESS, {80: 80, 443: 443})}

SERVICES = SPECS
SERVICE_IDS = SPEC_IDS


def network(manifests: Rendered) -> Network:
    return Network(
        pods=pods_of(manifests.workloads()),
        world=WORLD,
        policies=tuple(manifests.of_kind("NetworkPolicy")),
    )


def replicas(net: Network, workload: str) -> list[Endpoint]:
    pods = [pod for pod in net.pods if pod.workload == workload]
    assert pods, f"no workload {workload!r}"
    return pods


def resolve(manifests: Rendered, net: Network, host: str, port: int) -> list[tuple[Endpoint, int]]:
    """The pods (and their port) behind ``host:port`` as a pod of ours would reach it."""
    if "." in host:
        name, namespace = host.split(".")[:2]
        if (name, namespace) in OTHER_NAMESPACES:
            endpoint, ports = OTHER_NAMESPACES[(name, namespace)]
            return [(endpoint, ports[port])]
        raise AssertionError(f"unknown address {host}")
    service = manifests.get("Service", host)
    service_port = next(p for p in service["spec"]["ports"] if p["port"] == port)
    target = service_port.get("targetPort", port)
    found = []
    for pod in net.pods:
        if service["spec"]["selector"].items() <= pod.labels.items():
            numbers = [n for name, n, _ in pod.ports if target in (name, n)]
            found += [(pod, n) for n in numbers]
    assert found, f"{host}:{port} selects no pod port"
    return found


def configured_addresses(
    manifests: Rendered, net: Network, secrets: dict[str, dict[str, str]], workload: str
) -> set[tuple[Endpoint, int]]:
    """Every pod a workload's containers are configured to call (URLs in their env)."""
    deployment = manifests.get("Deployment", workload)
    addresses = set()
    containers = [
        *pod_spec(deployment).get("initContainers", []),
        *pod_spec(deployment)["containers"],
    ]
    for container in containers:
        for name, value in environment(container, manifests, secrets).items():
            if name in LINK_VARIABLES:
                continue
            url = urlsplit(value)
            if url.scheme not in DEFAULT_PORTS or not url.hostname:
                continue
            if url.hostname in LOOPBACK_HOSTS:
                continue
            port = url.port or DEFAULT_PORTS[url.scheme]
            addresses |= set(resolve(manifests, net, url.hostname, port))
    return addresses


def needed(
    manifests: Rendered, net: Network, secrets: dict[str, dict[str, str]]
) -> set[Connection]:
    """The connections the system needs: from the specs, the configured addresses, and
    the infrastructure's own (NATS' cluster routes, DNS, scraping)."""
    connections: set[Connection] = set()

    def allow(
        sources: list[Endpoint], destinations: list[Endpoint], port: int, protocol: str = "TCP"
    ) -> None:
        for source in sources:
            for destination in destinations:
                if source != destination:
                    connections.add(Connection(str(source), str(destination), port, protocol))

    for pod in net.pods:
        allow([pod], [DNS], 53, "UDP")
        allow([pod], [DNS], 53, "TCP")
    routed = {service for _, service in gateway_routes(SERVICES)}
    for service in SERVICES:
        pods = replicas(net, service.name)
        if service.needs_database:
            allow(pods, replicas(net, f"postgres-{service.name}"), 5432)
        if service.uses_nats:
            allow(pods, replicas(net, "nats"), 4222)
        if service.uses_redis:
            allow(pods, replicas(net, "redis"), 6379)
        if service.name in routed:
            allow([INGRESS], pods, 8000)
        allow([PROMETHEUS], pods, 8000)  # /metrics on the service's port
        if "STRIPE_SECRET_KEY" in service.settings.model_fields:
            allow(pods, [STRIPE, STRIPE6], 443)  # Stripe's API, outside the cluster
        if "SMTP_HOST" in service.settings.model_fields:
            allow(pods, [SMTP], 587)  # the mail provider's submission port
        for destination, port in configured_addresses(manifests, net, secrets, service.name):
            allow(pods, [destination], port)
    nats = replicas(net, "nats")
    allow(nats, nats, 6222)  # the cluster routes
    allow([PROMETHEUS], nats, 8222)  # the monitoring endpoint
    return connections


def describe(connections: set[Connection]) -> str:
    return "\n".join(f"  {connection}" for connection in sorted(connections))


@pytest.mark.parametrize("target", TARGETS)
def test_the_policies_allow_exactly_the_traffic_the_services_need(
    rendered: dict[str, Rendered], dev_secrets: dict[str, dict[str, str]], target: str
) -> None:
    needs_every_spec()
    manifests = rendered[target]
    net = network(manifests)
    allowed = net.allowed()
    expected = needed(manifests, net, dev_secrets)
    missing, extra = expected - allowed, allowed - expected
    assert not missing, f"needed but denied:\n{describe(missing)}"
    assert not extra, f"allowed but not needed:\n{describe(extra)}"


@pytest.mark.parametrize("side", ["Egress", "Ingress"])
@pytest.mark.parametrize("target", TARGETS)
def test_each_side_alone_allows_exactly_the_needed_traffic(
    rendered: dict[str, Rendered], dev_secrets: dict[str, dict[str, str]], target: str, side: str
) -> None:
    """Both ends say the same: a source's egress and a destination's ingress each allow the
    needed connections and no other, so neither list (e.g. who may reach Redis) carries an
    entry the other side silently cancels."""
    needs_every_spec()
    manifests = rendered[target]
    net = network(manifests)
    ours = {str(pod) for pod in net.pods}
    end = 0 if side == "Egress" else 1
    expected = {
        c for c in needed(manifests, net, dev_secrets) if (c.source, c.destination)[end] in ours
    }
    allowed = net.allowed(side)
    missing, extra = expected - allowed, allowed - expected
    assert not missing, f"needed but denied by {side}:\n{describe(missing)}"
    assert not extra, f"allowed by {side} but not needed:\n{describe(extra)}"


@pytest.mark.parametrize("target", TARGETS)
def test_the_namespace_denies_by_default_in_both_directions(
    rendered: dict[str, Rendered], target: str
) -> None:
    policies = rendered[target].of_kind("NetworkPolicy")
    default = [
        p
        for p in policies
        if p["spec"]["podSelector"] == {}
        and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert default, "no default-deny NetworkPolicy"


def can_reach(net: Network, source: Endpoint, destination: Endpoint) -> bool:
    return any(net.allows(source, destination, port, proto) for _, port, proto in destination.ports)


@pytest.mark.parametrize("target", TARGETS)
def test_no_service_reaches_another_services_database(
    rendered: dict[str, Rendered], target: str
) -> None:
    """For example tickets cannot reach orders' PostgreSQL, and expiration, which owns no
    database, reaches none."""
    net = network(rendered[target])
    databases = [pod for pod in net.pods if pod.workload.startswith("postgres-")]
    assert databases
    for service in SERVICES:
        for pod in replicas(net, service.name):
            for database in databases:
                own = database.workload == f"postgres-{service.name}"
                assert can_reach(net, pod, database) == own, f"{pod} -> {database}"
    for database in databases:
        for outsider in (INGRESS, PROMETHEUS, STRANGER):
            assert not can_reach(net, outsider, database), f"{outsider} -> {database}"


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("service", SERVICES, ids=SERVICE_IDS)
def test_no_pod_of_another_namespace_gets_in_and_no_pod_leaves_the_cluster_but_to_stripe_or_smtp(
    rendered: dict[str, Rendered], service: ServiceSpec[Any], target: str
) -> None:
    net = network(rendered[target])
    for pod in net.pods:
        assert not can_reach(net, STRANGER, pod), str(pod)
        assert not can_reach(net, pod, METADATA), str(pod)
        assert not can_reach(net, pod, NODE), str(pod)
    pays = "STRIPE_SECRET_KEY" in service.settings.model_fields
    mails = "SMTP_HOST" in service.settings.model_fields
    for pod in replicas(net, service.name):
        assert can_reach(net, pod, STRIPE) == pays, str(pod)
        assert can_reach(net, pod, SMTP) == mails, str(pod)
