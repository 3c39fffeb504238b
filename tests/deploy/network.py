"""Which connections a set of NetworkPolicies allows, computed offline.

The model follows the NetworkPolicy API's semantics: a pod selected by no policy of a
direction is open in that direction; a pod selected by some is reachable (or may reach)
only what one of their rules allows, a connection needing both the source's egress and
the destination's ingress. Peers match by pod selector (in the policy's namespace),
namespace selector, both, or IP block; ports by number or by the destination pod's port
name, with the protocol (TCP unless said). Pods outside the namespaces the manifests
define (the ingress controller, Prometheus, DNS, an unrelated pod) and addresses outside
the cluster stand in for the rest of the world; their own side is not modelled (open).
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

Doc = dict[str, Any]
NAMESPACE_LABEL = "kubernetes.io/metadata.name"


@dataclass(frozen=True)
class Endpoint:
    """A pod (ours or another namespace's) or an address outside the cluster."""

    name: str
    ip: str
    namespace: str | None = None  # None: not a pod
    labels: Mapping[str, str] = field(default_factory=dict, compare=False)
    # (port name or "", number, protocol) it listens on.
    ports: tuple[tuple[str, int, str], ...] = ()
    workload: str = ""  # the Deployment or StatefulSet a pod belongs to

    @property
    def namespace_labels(self) -> dict[str, str]:
        return {NAMESPACE_LABEL: self.namespace} if self.namespace else {}

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}" if self.namespace else self.name


@dataclass(frozen=True, order=True)
class Connection:
    source: str
    destination: str
    port: int
    protocol: str = "TCP"

    def __str__(self) -> str:
        return f"{self.source} -> {self.destination}:{self.port}/{self.protocol}"


Operator = Callable[[bool, str | None, list[str]], bool]
_OPERATORS: dict[str, Operator] = {
    "In": lambda present, value, values: present and value in values,
    "NotIn": lambda present, value, values: not (present and value in values),
    "Exists": lambda present, value, values: present,
    "DoesNotExist": lambda present, value, values: not present,
}


def selects(selector: Doc | None, labels: Mapping[str, str]) -> bool:
    """A label selector (``matchLabels`` and ``matchExpressions``); ``{}`` selects all."""
    if selector is None:
        return False
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    return all(
        _OPERATORS[e["operator"]](e["key"] in labels, labels.get(e["key"]), e.get("values", []))
        for e in selector.get("matchExpressions", [])
    )


def _peer_matches(peer: Doc, endpoint: Endpoint, policy_namespace: str) -> bool:
    if "ipBlock" in peer:
        address = ipaddress.ip_address(endpoint.ip)
        block = peer["ipBlock"]
        cidr = ipaddress.ip_network(block["cidr"])
        if address.version != cidr.version or address not in cidr:
            return False
        return not any(
            address.version == network.version and address in network
            for network in map(ipaddress.ip_network, block.get("except", []))
        )
    if endpoint.namespace is None:
        return False  # selectors match pods only
    if "namespaceSelector" in peer:
        if not selects(peer["namespaceSelector"], endpoint.namespace_labels):
            return False
    elif endpoint.namespace != policy_namespace:
        return False
    return "podSelector" not in peer or selects(peer["podSelector"], endpoint.labels)


def _port_matches(
    rule_ports: list[Doc] | None, destination: Endpoint, port: int, protocol: str
) -> bool:
    if not rule_ports:
        return True  # no ports: every port
    for entry in rule_ports:
        if entry.get("protocol", "TCP") != protocol:
            continue
        wanted = entry.get("port")
        if wanted is None:
            return True
        if isinstance(wanted, str):
            numbers = {
                n for name, n, proto in destination.ports if name == wanted and proto == protocol
            }
            if port in numbers:
                return True
        else:
            first = int(wanted)
            if first <= port <= int(entry.get("endPort") or first):
                return True
    return False


def _policy_types(policy: Doc) -> set[str]:
    spec = policy["spec"]
    if "policyTypes" in spec:
        return set(spec["policyTypes"])
    return {"Ingress", *(["Egress"] if "egress" in spec else [])}


@dataclass(frozen=True)
class Network:
    """The pods of the rendered manifests, the outside world, and the policies."""

    pods: tuple[Endpoint, ...]
    world: tuple[Endpoint, ...]
    policies: tuple[Doc, ...]

    @property
    def endpoints(self) -> tuple[Endpoint, ...]:
        return (*self.pods, *self.world)

    def endpoint(self, name: str) -> Endpoint:
        return next(e for e in self.endpoints if str(e) == name or e.name == name)

    def _governing(self, endpoint: Endpoint, direction: str) -> list[Doc]:
        return [
            policy
            for policy in self.policies
            if policy["metadata"].get("namespace", "default") == endpoint.namespace
            and direction in _policy_types(policy)
            and selects(policy["spec"]["podSelector"], endpoint.labels)
        ]

    def _allows(
        self,
        direction: str,
        subject: Endpoint,
        peer: Endpoint,
        port_owner: Endpoint,
        port: int,
        protocol: str,
    ) -> bool:
        policies = self._governing(subject, direction)
        if not policies:
            return True
        key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
        for policy in policies:
            namespace = policy["metadata"].get("namespace", "default")
            for rule in policy["spec"].get(key) or []:
                peers = rule.get(peers_key)
                if peers and not any(_peer_matches(p, peer, namespace) for p in peers):
                    continue
                if _port_matches(rule.get("ports"), port_owner, port, protocol):
                    return True
        return False

    def allows(
        self, source: Endpoint, destination: Endpoint, port: int, protocol: str, side: str = ""
    ) -> bool:
        """Whether the connection is allowed; with ``side`` "Egress" or "Ingress", whether
        that side's policies alone allow it."""
        egress = source.namespace is None or self._allows(
            "Egress", source, destination, destination, port, protocol
        )
        ingress = destination.namespace is None or self._allows(
            "Ingress", destination, source, destination, port, protocol
        )
        return {"Egress": egress, "Ingress": ingress}.get(side, egress and ingress)

    def candidate_connections(self) -> Iterator[tuple[Endpoint, Endpoint, int, str]]:
        """Every (source, destination, port) with one end ours, on a port the destination
        listens on."""
        ours = set(self.pods)
        for source, destination in itertools.product(self.endpoints, repeat=2):
            if source == destination or not ({source, destination} & ours):
                continue
            for _, number, protocol in destination.ports:
                yield source, destination, number, protocol

    def allowed(self, side: str = "") -> set[Connection]:
        """The connections allowed; with ``side``, those whose source (Egress) or
        destination (Ingress) is ours that this side's policies alone allow."""
        ours = {"Egress": 0, "Ingress": 1}.get(side)
        pods = set(self.pods)
        return {
            Connection(str(source), str(destination), port, protocol)
            for source, destination, port, protocol in self.candidate_connections()
            if (ours is None or (source, destination)[ours] in pods)
            and self.allows(source, destination, port, protocol, side)
        }


def pods_of(workloads: Iterable[Doc]) -> tuple[Endpoint, ...]:
    """Two pods of each workload that runs several replicas (so traffic between replicas
    is checked too), one of the others, each with a pod address."""
    pods = []
    addresses = (f"10.244.0.{n}" for n in itertools.count(1))
    for workload in workloads:
        template = workload["spec"]["template"]
        ports = tuple(
            (port.get("name", ""), port["containerPort"], port.get("protocol", "TCP"))
            for container in template["spec"]["containers"]
            for port in container.get("ports", [])
        )
        name = workload["metadata"]["name"]
        for ordinal in range(min(workload["spec"].get("replicas", 1), 2)):
            pods.append(
                Endpoint(
                    name=f"{name}-{ordinal}",
                    ip=next(addresses),
                    namespace=workload["metadata"].get("namespace", "default"),
                    labels=dict(template["metadata"]["labels"]),
                    ports=ports,
                    workload=name,
                )
            )
    return tuple(pods)
