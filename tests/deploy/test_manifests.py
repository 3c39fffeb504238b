"""The Kubernetes manifests agree with the Kubernetes schemas and the services' specs.

Every rule reads the real files under ``infra/k8s`` and the services' specs
(``tests/deploy/specs.py``), so adding a service without its manifests fails here.
``kubectl``/``kustomize`` are not available offline, so the module renders the
kustomizations itself: the renderer understands exactly the Kustomize features the
manifests use (resources, namespace, labels, images, strategic-merge and JSON 6902
patches with targets) and refuses any other field, so it cannot silently render
something different from what ``kubectl apply -k`` applies.
"""

from __future__ import annotations

import copy
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from tests.deploy.specs import (
    MISSING,
    ROOT,
    SPEC_IDS,
    SPECS,
    declared_entry_points,
    needs_every_spec,
    service_directories,
)
from ticketing_common.spec import CATCH_ALL, ServiceSpec
from ticketing_devstack.registry import gateway_routes

K8S = ROOT / "infra" / "k8s"
OVERLAYS = ("dev", "prod")
TARGETS = ("base", *(f"overlays/{name}" for name in OVERLAYS))

Doc = dict[str, Any]

SUPPORTED_FIELDS = {"apiVersion", "kind", "resources", "namespace", "labels", "images", "patches"}
CLUSTER_SCOPED_KINDS = {"Namespace", "ClusterRole", "ClusterRoleBinding", "StorageClass"}


class KustomizeError(Exception):
    """The kustomization uses something this renderer does not understand, or is wrong."""


def load_yaml_docs(path: Path) -> list[Doc]:
    docs = [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
    for doc in docs:
        if not isinstance(doc, dict):
            raise KustomizeError(f"{path}: every YAML document must be a mapping")
    return docs


def _strategic_merge(target: Any, patch: Any) -> Any:
    """Maps merge key by key, lists of named maps merge by ``name``, other values replace."""
    if isinstance(target, dict) and isinstance(patch, dict):
        merged = dict(target)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = _strategic_merge(merged[key], value)
            else:
                merged[key] = copy.deepcopy(value)
        return merged
    if (
        isinstance(target, list)
        and isinstance(patch, list)
        and all(isinstance(item, dict) and "name" in item for item in [*target, *patch])
    ):
        by_name = {item["name"]: item for item in target}
        result = [
            _strategic_merge(item, next((p for p in patch if p["name"] == item["name"]), {}))
            for item in target
        ]
        result += [copy.deepcopy(item) for item in patch if item["name"] not in by_name]
        return result
    return copy.deepcopy(patch)


def _pointer(path: str) -> list[str]:
    if not path.startswith("/"):
        raise KustomizeError(f"JSON pointer must start with '/': {path}")
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _json6902(doc: Doc, operations: list[Doc]) -> None:
    for operation in operations:
        op, parts = operation["op"], _pointer(operation["path"])
        parent: Any = doc
        for part in parts[:-1]:
            parent = parent[int(part)] if isinstance(parent, list) else parent[part]
        last = parts[-1]
        if op not in {"add", "replace", "remove"}:
            raise KustomizeError(f"unsupported JSON patch op {op!r}")
        if isinstance(parent, list):
            index = len(parent) if last == "-" else int(last)
            if op == "add":
                parent.insert(index, copy.deepcopy(operation["value"]))
            elif op == "replace":
                parent[index] = copy.deepcopy(operation["value"])
            else:
                del parent[index]
        else:
            if op != "add" and last not in parent:
                raise KustomizeError(f"{op} of missing path {operation['path']}")
            if op == "remove":
                del parent[last]
            else:
                parent[last] = copy.deepcopy(operation["value"])


def _selected(doc: Doc, target: Doc) -> bool:
    unknown = set(target) - {"kind", "name", "labelSelector"}
    if unknown:
        raise KustomizeError(f"unsupported patch target fields {sorted(unknown)}")
    if "kind" in target and doc["kind"] != target["kind"]:
        return False
    if "name" in target and doc["metadata"]["name"] != target["name"]:
        return False
    labels = doc["metadata"].get("labels", {})
    for requirement in filter(None, target.get("labelSelector", "").split(",")):
        key, sep, value = requirement.partition("=")
        if not sep or labels.get(key.strip()) != value.strip():
            return False
    return True


def pod_containers(doc: Doc) -> Iterator[Doc]:
    """Every container and init container of a workload's pod template."""
    pod = doc.get("spec", {}).get("template", {}).get("spec", {})
    yield from pod.get("initContainers", [])
    yield from pod.get("containers", [])


def _set_image(doc: Doc, image: Doc) -> None:
    for container in pod_containers(doc):
        name, _, _ = container["image"].partition(":")
        if name == image["name"]:
            new_name = image.get("newName", name)
            container["image"] = f"{new_name}:{image['newTag']}" if "newTag" in image else new_name


def _apply_patch(directory: Path, docs: list[Doc], patch: Doc) -> None:
    if set(patch) - {"path", "target"}:
        raise KustomizeError(f"{directory}: only path/target patches are supported")
    body = yaml.safe_load((directory / patch["path"]).read_text())
    target = patch.get("target")
    if target is None:
        if not isinstance(body, dict):
            raise KustomizeError(f"{patch['path']}: a JSON 6902 patch needs a target")
        target = {"kind": body["kind"], "name": body["metadata"]["name"]}
    selected = [doc for doc in docs if _selected(doc, target)]
    if not selected:
        raise KustomizeError(f"{directory}: patch {patch['path']} matches no resource")
    for doc in selected:
        if isinstance(body, list):
            _json6902(doc, body)
        else:
            doc.update(_strategic_merge(doc, body))


def _apply_transformers(kustomization: Doc, docs: list[Doc]) -> None:
    for entry in kustomization.get("labels", []):
        if entry.get("includeSelectors") or entry.get("includeTemplates"):
            raise KustomizeError("labels with includeSelectors/includeTemplates are unsupported")
        for doc in docs:
            doc["metadata"].setdefault("labels", {}).update(entry["pairs"])
    for image in kustomization.get("images", []):
        for doc in docs:
            _set_image(doc, image)
    if "namespace" in kustomization:
        for doc in docs:
            if doc["kind"] not in CLUSTER_SCOPED_KINDS:
                doc["metadata"]["namespace"] = kustomization["namespace"]


def render(directory: Path) -> list[Doc]:
    """What ``kubectl kustomize <directory>`` would print, as a list of documents."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - SUPPORTED_FIELDS
    if unknown:
        raise KustomizeError(f"{directory}: unsupported kustomization fields {sorted(unknown)}")
    docs: list[Doc] = []
    for resource in kustomization.get("resources", []):
        path = (directory / resource).resolve()
        docs += render(path) if path.is_dir() else load_yaml_docs(path)
    for patch in kustomization.get("patches", []):
        _apply_patch(directory, docs, patch)
    _apply_transformers(kustomization, docs)

    seen: set[tuple[str, str]] = set()
    for doc in docs:
        key = (doc["kind"], doc["metadata"]["name"])
        if key in seen:
            raise KustomizeError(f"{directory}: duplicate resource {key}")
        seen.add(key)
    return docs


@dataclass(frozen=True)
class Rendered:
    """The documents of one kustomization (base or an overlay), with lookups."""

    name: str
    docs: list[Doc]

    def of_kind(self, kind: str) -> list[Doc]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def find(self, kind: str, name: str) -> Doc | None:
        return next((d for d in self.of_kind(kind) if d["metadata"]["name"] == name), None)

    def get(self, kind: str, name: str) -> Doc:
        doc = self.find(kind, name)
        assert doc is not None, f"{self.name}: no {kind} named {name!r}"
        return doc


@pytest.fixture(scope="session")
def rendered() -> dict[str, Rendered]:
    return {target: Rendered(target, render(K8S / target)) for target in TARGETS}


@pytest.fixture(scope="session")
def dev_secrets() -> dict[str, dict[str, str]]:
    """The Secrets the system declares: names and keys, from the dev overlay's secrets."""
    docs = load_yaml_docs(K8S / "overlays" / "dev" / "secrets.yaml")
    return {
        doc["metadata"]["name"]: {**doc.get("stringData", {}), **doc.get("data", {})}
        for doc in docs
        if doc["kind"] == "Secret"
    }


# The oldest Kubernetes the manifests support (preStop `sleep` is GA from 1.30) and the
# newest schema kubernetes-validate ships offline.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.utils.latest_version())
SERVICES = SPECS
SERVICE_IDS = SPEC_IDS
PLACEHOLDER_SECRET = "s" * 64
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


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


def points_at_this_machine(value: object) -> bool:
    return isinstance(value, str) and urlsplit(value).hostname in LOOPBACK_HOSTS


def needed_variables(service: ServiceSpec[Any]) -> set[str]:
    """Variables a Deployment must set: JWT_KEY, what the spec says the service uses
    (database, bus, Redis), every required setting, and every setting whose default points
    at this machine (localhost is never right in a cluster)."""
    needed = {"JWT_KEY"}
    if service.needs_database:
        needed.add("DATABASE_URL")
    if service.uses_nats:
        needed.add("NATS_URL")
    if service.uses_redis:
        needed.add("REDIS_URL")
    for name, field in service.settings.model_fields.items():
        if field.is_required() or points_at_this_machine(field.default):
            needed.add(name)
    return needed


# ---------------------------------------------------------------- rendering and schemas


def test_there_is_at_least_one_service_to_deploy() -> None:
    assert SERVICES, "no service spec installed: the entry points or services/ are broken"


@pytest.mark.parametrize("name", sorted(service_directories()))
def test_every_service_directory_registers_a_spec_that_loads(name: str) -> None:
    """Its pyproject declares ``{name} = "ticketing_{name}.app:SPEC"`` in the
    ``ticketing.services`` group, and the spec loads: else the stack, the gateway and
    these tests would silently leave the service out."""
    declared = declared_entry_points(service_directories()[name])
    assert declared == {name: f"ticketing_{name}.app:SPEC"}
    assert name not in MISSING, (
        f"ticketing_{name}.app:SPEC does not load as a ServiceSpec (the log of "
        "ticketing.spec says why): the service is not described by its spec yet"
    )
    spec = next(spec for spec in SERVICES if spec.name == name)
    assert spec.package == f"ticketing_{name}"


@pytest.mark.parametrize("target", TARGETS)
def test_every_kustomization_renders_with_unique_resources(target: str) -> None:
    assert render(K8S / target)


def test_the_renderer_refuses_kustomize_features_it_does_not_implement(tmp_path: Any) -> None:
    (tmp_path / "kustomization.yaml").write_text("configMapGenerator: []\n")
    with pytest.raises(KustomizeError):
        render(tmp_path)


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("target", TARGETS)
def test_every_rendered_manifest_validates_against_the_kubernetes_schema(
    rendered: dict[str, Rendered], target: str, version: str
) -> None:
    errors = []
    for doc in rendered[target].docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {error.message}")
    assert not errors, "\n".join(errors)


def test_every_yaml_file_under_infra_k8s_is_used_by_a_kustomization() -> None:
    used: set[str] = set()
    for kustomization in K8S.rglob("kustomization.yaml"):
        spec = yaml.safe_load(kustomization.read_text())
        for entry in [*spec.get("resources", []), *spec.get("patches", [])]:
            name = entry if isinstance(entry, str) else entry["path"]
            used.add(str((kustomization.parent / name).resolve()))
        used.add(str(kustomization.resolve()))
    unused = [
        str(path.relative_to(ROOT))
        for path in K8S.rglob("*.yaml")
        if str(path.resolve()) not in used
    ]
    assert not unused, f"YAML files no kustomization includes: {unused}"


# ---------------------------------------------------------------- one set per service


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("service", SERVICES, ids=SERVICE_IDS)
def test_every_service_has_a_deployment_a_service_and_a_pdb(
    rendered: dict[str, Rendered], service: ServiceSpec[Any], target: str
) -> None:
    manifests = rendered[target]
    deployment = manifests.get("Deployment", service.name)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()

    k8s_service = manifests.get("Service", service.name)
    assert k8s_service["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert k8s_service["spec"]["selector"].items() <= pod_labels.items()
    port_names = {p["name"] for p in api_container(deployment, service)["ports"]}
    assert {p["targetPort"] for p in k8s_service["spec"]["ports"]} <= port_names

    pdb = manifests.get("PodDisruptionBudget", service.name)
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


@pytest.mark.parametrize("target", TARGETS)
def test_every_deployment_of_an_app_belongs_to_a_known_service(
    rendered: dict[str, Rendered], target: str
) -> None:
    needs_every_spec()
    known = {service.name for service in SERVICES}
    apps = {
        doc["metadata"]["name"] for doc in rendered[target].of_kind("Deployment") if is_app(doc)
    }
    assert apps == known


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("service", SERVICES, ids=SERVICE_IDS)
def test_every_variable_a_service_requires_is_set_in_its_deployment(
    rendered: dict[str, Rendered],
    dev_secrets: dict[str, dict[str, str]],
    service: ServiceSpec[Any],
    target: str,
) -> None:
    manifests = rendered[target]
    container = api_container(manifests.get("Deployment", service.name), service)
    missing = needed_variables(service) - environment(container, manifests, dev_secrets).keys()
    assert not missing, f"{service.name} in {target}: {sorted(missing)} not set"


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("service", SERVICES, ids=SERVICE_IDS)
def test_the_settings_class_accepts_the_environment_of_each_overlay(
    rendered: dict[str, Rendered],
    dev_secrets: dict[str, dict[str, str]],
    service: ServiceSpec[Any],
    overlay: str,
) -> None:
    manifests = rendered[f"overlays/{overlay}"]
    container = api_container(manifests.get("Deployment", service.name), service)
    values = environment(container, manifests, dev_secrets)
    cls = service.settings
    known = {name: value for name, value in values.items() if name in cls.model_fields}
    if overlay == "prod":
        # Production refuses every key written in the repository (the dev overlay's
        # included); the operator creates a fresh one (docs/deploy.md).
        known["JWT_KEY"] = secrets.token_hex(32)
    # model_validate checks these values only, never the test process's environment.
    settings: Any = cls.model_validate(known)
    expected = "production" if overlay == "prod" else "development"
    assert expected == settings.ENVIRONMENT


def test_prod_secrets_are_all_created_by_the_documented_commands(
    rendered: dict[str, Rendered], dev_secrets: dict[str, dict[str, str]]
) -> None:
    """Prod stores no Secret: each one a workload references is declared (dev overlay, same
    names and keys) and created by a `kubectl create secret` command in docs/deploy.md."""
    manifests = rendered["overlays/prod"]
    assert not manifests.of_kind("Secret")
    docs = (ROOT / "docs" / "deploy.md").read_text()
    for doc in manifests.docs:
        for container in pod_containers(doc):
            for variable in container.get("env", []):
                ref = variable.get("valueFrom", {}).get("secretKeyRef")
                if ref is None:
                    continue
                if not ref.get("optional"):
                    assert ref["key"] in dev_secrets.get(ref["name"], {}), ref
                assert ref["name"] in dev_secrets, ref
                assert f"create secret generic {ref['name']}" in docs, ref["name"]
                assert f"{ref['key']}=" in docs, ref


@pytest.mark.parametrize(
    "service",
    [service for service in SERVICES if service.needs_database],
    ids=lambda service: service.name,
)
def test_services_with_a_database_migrate_it_before_serving(
    rendered: dict[str, Rendered], service: ServiceSpec[Any]
) -> None:
    manifests = rendered["base"]
    pod = manifests.get("Deployment", service.name)["spec"]["template"]["spec"]
    migrate = next(c for c in pod.get("initContainers", []) if c["name"] == "migrate")
    assert migrate["command"] == ["python", "-m", "ticketing_common.migrate", service.package]
    assert (
        migrate["image"] == api_container({"spec": {"template": {"spec": pod}}}, service)["image"]
    )
    assert "DATABASE_URL" in {v["name"] for v in migrate["env"]}

    postgres = manifests.get("StatefulSet", f"postgres-{service.name}")
    env = {v["name"]: v for v in postgres["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["POSTGRES_DB"]["value"] == service.database_name
    assert postgres["spec"]["volumeClaimTemplates"], "PostgreSQL data must be on a PVC"
    manifests.get("Service", f"postgres-{service.name}")


@pytest.mark.parametrize("target", TARGETS)
def test_services_without_a_database_get_neither_postgres_nor_migrations(
    rendered: dict[str, Rendered], target: str
) -> None:
    """The other half of the rule above: a database appears exactly where the spec says
    a service owns one, so a copied manifest does not start a PostgreSQL nobody uses."""
    needs_every_spec()
    manifests = rendered[target]
    for service in SERVICES:
        pod = manifests.get("Deployment", service.name)["spec"]["template"]["spec"]
        migrates = [c for c in pod.get("initContainers", []) if c["name"] == "migrate"]
        has_postgres = manifests.find("StatefulSet", f"postgres-{service.name}") is not None
        assert bool(migrates) == service.needs_database, f"{service.name}: migrate"
        assert has_postgres == service.needs_database, f"{service.name}: postgres-{service.name}"
    owners = {f"postgres-{service.name}" for service in SERVICES if service.needs_database}
    databases = {
        doc["metadata"]["name"]
        for doc in manifests.of_kind("StatefulSet")
        if doc["metadata"]["name"].startswith("postgres-")
    }
    assert databases == owners


# ---------------------------------------------------------------- ingress


@pytest.mark.parametrize("target", TARGETS)
def test_ingress_paths_equal_the_gateway_routes(rendered: dict[str, Rendered], target: str) -> None:
    needs_every_spec()
    routes: dict[str, str] = {}
    for ingress in rendered[target].of_kind("Ingress"):
        assert ingress["spec"]["ingressClassName"] == "nginx"
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                assert path["pathType"] == "Prefix"
                assert path["path"] not in routes, f"{path['path']} routed twice"
                backend = path["backend"]["service"]
                service = rendered[target].get("Service", backend["name"])
                assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}
                routes[path["path"]] = backend["name"]
    expected = dict(gateway_routes(SERVICES))
    assert routes == expected
    assert (CATCH_ALL in routes) == any(s.is_catch_all for s in SERVICES)


# ---------------------------------------------------------------- pod hygiene


def _check_container_security(container: Doc, read_only: bool) -> None:
    security = container.get("securityContext", {})
    name = container["name"]
    assert security.get("allowPrivilegeEscalation") is False, name
    assert security.get("runAsNonRoot") is True, name
    assert security.get("capabilities", {}).get("drop") == ["ALL"], name
    assert security.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
    assert security.get("readOnlyRootFilesystem") is read_only, name
    resources = container.get("resources", {})
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= resources.get(kind, {}).keys(), f"{name}: {kind}"


@pytest.mark.parametrize("target", TARGETS)
def test_every_workload_runs_non_root_with_limits_and_a_restricted_security_context(
    rendered: dict[str, Rendered], target: str
) -> None:
    workloads = [*rendered[target].of_kind("Deployment"), *rendered[target].of_kind("StatefulSet")]
    assert workloads
    for workload in workloads:
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod.get("automountServiceAccountToken") is False
        is_dev_app = target == "overlays/dev" and is_app(workload)
        for container in pod.get("initContainers", []):
            _check_container_security(container, read_only=True)
        for container in pod["containers"]:
            # The dev overlay lets Skaffold sync files into the app containers.
            _check_container_security(container, read_only=not is_dev_app)
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            volumes = {v["name"]: v for v in pod.get("volumes", [])}
            assert "emptyDir" in volumes[mounts["/tmp"]]  # noqa: S108 (a mount path), f"{container['name']}: /tmp"


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("service", SERVICES, ids=SERVICE_IDS)
def test_every_service_has_readiness_and_liveness_probes_on_its_http_port(
    rendered: dict[str, Rendered], service: ServiceSpec[Any], target: str
) -> None:
    container = api_container(rendered[target].get("Deployment", service.name), service)
    port = next(p for p in container["ports"] if p["name"] == "http")
    assert port["containerPort"] == 8000
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


@pytest.mark.parametrize("target", ["base", "overlays/prod"])
@pytest.mark.parametrize("service", SERVICES, ids=SERVICE_IDS)
def test_stateless_services_run_at_least_two_replicas_with_a_pdb(
    rendered: dict[str, Rendered], service: ServiceSpec[Any], target: str
) -> None:
    deployment = rendered[target].get("Deployment", service.name)
    assert deployment["spec"]["replicas"] >= 2
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    pdb = rendered[target].get("PodDisruptionBudget", service.name)
    assert pdb["spec"].get("maxUnavailable") == 1 or pdb["spec"].get("minAvailable") == 1


def test_the_prod_overlay_runs_in_production_with_secure_cookies(
    rendered: dict[str, Rendered],
) -> None:
    config = rendered["overlays/prod"].get("ConfigMap", "ticketing-config")["data"]
    assert config["ENVIRONMENT"] == "production"
    assert config["COOKIE_SECURE"] == "true"


@pytest.mark.parametrize("service", SERVICES, ids=SERVICE_IDS)
def test_the_prod_overlay_pins_a_registry_image_and_tag_for_every_service(
    rendered: dict[str, Rendered], service: ServiceSpec[Any]
) -> None:
    deployment = rendered["overlays/prod"].get("Deployment", service.name)
    for container in pod_containers(deployment):
        name, _, tag = container["image"].rpartition(":")
        assert name.endswith(f"/ticketing/{service.name}"), container["image"]
        assert tag, container["image"]
        assert tag != "latest", container["image"]


def test_the_prod_overlay_runs_no_unpinned_or_latest_image(rendered: dict[str, Rendered]) -> None:
    """Not only the services': a workload of ours added to base without an ``images:`` entry
    in prod would otherwise run the bare local name."""
    for doc in rendered["overlays/prod"].docs:
        for container in pod_containers(doc):
            name, _, tag = container["image"].rpartition(":")
            assert name, f"{container['image']}: no tag"
            assert tag != "latest", container["image"]
            assert not name.startswith("ticketing/"), f"{container['image']}: no registry"


# ---------------------------------------------------------------- wiring

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
                url = urlsplit(value)
                if url.scheme not in DEFAULT_PORTS or not url.hostname:
                    continue
                if "." in url.hostname or url.hostname in LOOPBACK_HOSTS:
                    continue  # another namespace (the ingress controller) or outside
                port = url.port or DEFAULT_PORTS[url.scheme]
                yield container["name"], name, url.hostname, port


@pytest.mark.parametrize("target", TARGETS)
def test_every_in_cluster_address_a_service_is_given_names_a_service_port(
    rendered: dict[str, Rendered], dev_secrets: dict[str, dict[str, str]], target: str
) -> None:
    manifests = rendered[target]
    addresses = list(in_cluster_addresses(manifests, dev_secrets))
    assert addresses
    for container, variable, host, port in addresses:
        service = manifests.find("Service", host)
        assert service is not None, f"{container}: {variable} names no Service {host!r}"
        ports = {p["port"] for p in service["spec"]["ports"]}
        assert port in ports, f"{container}: {variable} uses {host}:{port}, not in {ports}"


@pytest.mark.parametrize("target", TARGETS)
def test_every_deployment_besides_the_services_is_used_by_one_of_them(
    rendered: dict[str, Rendered], dev_secrets: dict[str, dict[str, str]], target: str
) -> None:
    """A helper Deployment (the dev overlay's Stripe sandbox) has a Service that some
    service is configured to call, so it is not deployed for nothing."""
    manifests = rendered[target]
    called = {host for _, _, host, _ in in_cluster_addresses(manifests, dev_secrets)}
    for deployment in manifests.of_kind("Deployment"):
        if is_app(deployment):
            continue
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        services = {
            service["metadata"]["name"]
            for service in manifests.of_kind("Service")
            if service["spec"]["selector"].items() <= pod_labels.items()
        }
        name = deployment["metadata"]["name"]
        assert services & called, f"{name}: no service is configured to call it"


# ---------------------------------------------------------------- infrastructure


def test_nats_is_a_three_node_jetstream_cluster_on_persistent_volumes(
    rendered: dict[str, Rendered],
) -> None:
    manifests = rendered["base"]
    nats = manifests.get("StatefulSet", "nats")
    assert nats["spec"]["replicas"] == 3
    config = manifests.get("ConfigMap", "nats-config")["data"]["nats.conf"]
    assert "jetstream" in config
    assert "store_dir: /data" in config
    for ordinal in range(3):
        assert f"nats://nats-{ordinal}.{nats['spec']['serviceName']}:6222" in config
    container = nats["spec"]["template"]["spec"]["containers"][0]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    claims = {c["metadata"]["name"] for c in nats["spec"]["volumeClaimTemplates"]}
    assert mounts["/data"] in claims
    manifests.get("PodDisruptionBudget", "nats")


def test_redis_persists_with_the_append_only_file(rendered: dict[str, Rendered]) -> None:
    redis = rendered["base"].get("StatefulSet", "redis")
    args = redis["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--appendonly") + 1] == "yes"
    assert redis["spec"]["volumeClaimTemplates"]


def test_dev_secrets_file_declares_only_secrets() -> None:
    docs = load_yaml_docs(K8S / "overlays" / "dev" / "secrets.yaml")
    assert {doc["kind"] for doc in docs} == {"Secret"}
