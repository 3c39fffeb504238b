"""Every service has an image recipe and a Skaffold artifact, and they agree with each other.

No Docker engine is needed: the rules read the Dockerfiles, ``.dockerignore`` and
``skaffold.yaml`` as text and YAML.
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from ticketing_devstack.registry import KNOWN_SERVICES, Service, installed_services

ROOT = Path(__file__).resolve().parents[2]
# The image's virtual environment and its site-packages, where Skaffold syncs source files.
VENV = "/app/.venv"
SITE_PACKAGES = f"{VENV}/lib/python3.11/site-packages"
APP_USER = "10001"


def deployed_services() -> tuple[Service, ...]:
    """Installed services and those with a workspace directory (as in test_manifests)."""
    installed = {service.name for service in installed_services()}
    return tuple(
        service
        for service in KNOWN_SERVICES
        if service.name in installed
        or (ROOT / "services" / service.name / "pyproject.toml").exists()
    )


SERVICES = deployed_services()
SERVICE_IDS = [service.name for service in SERVICES]


def project_name(service: Service) -> str:
    pyproject = tomllib.loads((ROOT / "services" / service.name / "pyproject.toml").read_text())
    name = pyproject["project"]["name"]
    assert isinstance(name, str)
    return name


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            result.append((keyword.upper(), " ".join(rest.split())))
    return result


def skaffold() -> dict[str, Any]:
    config = yaml.safe_load((ROOT / "skaffold.yaml").read_text())
    assert isinstance(config, dict)
    return config


def artifacts(build: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {artifact["image"]: artifact for artifact in build["artifacts"]}


@pytest.mark.parametrize("service", SERVICES, ids=SERVICE_IDS)
def test_every_service_has_a_multi_stage_uv_dockerfile_for_its_package_only(
    service: Service,
) -> None:
    dockerfile = ROOT / "services" / service.name / "Dockerfile"
    assert dockerfile.exists(), f"{service.name}: no Dockerfile"
    steps = instructions(dockerfile)
    text = " ".join(f"{keyword} {rest}" for keyword, rest in steps)
    assert len([k for k, _ in steps if k == "FROM"]) >= 3, "uv, build and runtime stages"
    assert re.search(r"ARG PYTHON_IMAGE=python:3\.11-slim", text)

    uv_images = re.findall(r"ghcr\.io/astral-sh/uv:(\S+)", text)
    assert uv_images, "uv comes from its pinned official image"
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", tag) for tag in uv_images), uv_images

    syncs = [rest for keyword, rest in steps if keyword == "RUN" and "uv sync" in rest]
    assert syncs
    for sync in syncs:
        for flag in ("--frozen", "--no-dev", "--no-editable", f"--package {project_name(service)}"):
            assert flag in sync, f"{service.name}: `uv sync` without {flag}"
        assert "--extra" not in sync
        assert "--all-extras" not in sync, "ticketing-common's embedded servers stay out"
    assert f"COPY services/{service.name} services/{service.name}" in text
    assert "COPY libs/common libs/common" in text


@pytest.mark.parametrize("service", SERVICES, ids=SERVICE_IDS)
def test_every_image_runs_uvicorn_with_the_app_factory_as_a_non_root_user(
    service: Service,
) -> None:
    steps = instructions(ROOT / "services" / service.name / "Dockerfile")
    runtime = steps[max(i for i, (k, _) in enumerate(steps) if k == "FROM") :]
    users = [rest for keyword, rest in runtime if keyword == "USER"]
    assert users == [f"{APP_USER}:{APP_USER}"], "the final stage runs as uid/gid 10001"
    assert f"--from=build --chown={APP_USER}:{APP_USER} {VENV} {VENV}" in " ".join(
        rest for keyword, rest in runtime if keyword == "COPY"
    )
    cmds = [yaml.safe_load(rest) for keyword, rest in runtime if keyword == "CMD"]
    assert cmds == [
        [
            "uvicorn",
            "--factory",
            service.app_factory,
            "--host",
            "0.0.0.0",
            "--port",
            "8000",
        ]
    ]


def test_dockerignore_keeps_what_the_images_copy_and_drops_local_state() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def ignored(path: str) -> bool:
        verdict = False
        for pattern in patterns:
            negate = pattern.startswith("!")
            glob = pattern.removeprefix("!").replace("**/", "")
            parts = path.split("/")
            prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
            if any(
                fnmatch.fnmatch(p, glob) or fnmatch.fnmatch(p.split("/")[-1], glob)
                for p in prefixes
            ):
                verdict = not negate
        return verdict

    for path in ("uv.lock", "pyproject.toml", "libs/common/src/ticketing_common/app.py"):
        assert not ignored(path), path
    for service in SERVICES:
        assert not ignored(f"services/{service.name}/pyproject.toml")
        assert not ignored(f"services/{service.name}/src/{service.package}/__init__.py")
    for path in (".venv", "services/auth/.venv", ".git", "libs/common/tests", ".ticketing"):
        assert ignored(path), path


def test_skaffold_builds_one_artifact_per_service_from_its_dockerfile() -> None:
    config = skaffold()
    assert config["apiVersion"].startswith("skaffold/v4")
    expected = {f"ticketing/{service.name}" for service in SERVICES}
    for build in (config["build"], *(p["build"] for p in config["profiles"] if "build" in p)):
        built = artifacts(build)
        assert set(built) == expected
        for service in SERVICES:
            artifact = built[f"ticketing/{service.name}"]
            assert artifact.get("context", ".") == "."
            assert artifact["docker"]["dockerfile"] == f"services/{service.name}/Dockerfile"


def test_skaffold_deploys_the_dev_overlay_and_prod_with_a_profile() -> None:
    config = skaffold()
    assert config["manifests"]["kustomize"]["paths"] == ["infra/k8s/overlays/dev"]
    profiles = {profile["name"]: profile for profile in config["profiles"]}
    assert profiles["prod"]["manifests"]["kustomize"]["paths"] == ["infra/k8s/overlays/prod"]
    for path in ("infra/k8s/overlays/dev", "infra/k8s/overlays/prod"):
        assert (ROOT / path / "kustomization.yaml").exists()


@pytest.mark.parametrize("service", SERVICES, ids=SERVICE_IDS)
def test_skaffold_dev_syncs_python_sources_into_the_image_site_packages(
    service: Service,
) -> None:
    profiles = {profile["name"]: profile for profile in skaffold()["profiles"]}
    dev = profiles["dev"]
    assert {"command": "dev"} in dev["activation"]
    rules = artifacts(dev["build"])[f"ticketing/{service.name}"]["sync"]["manual"]
    expected = [
        {
            "src": f"services/{service.name}/src/**/*.py",
            "dest": SITE_PACKAGES,
            "strip": f"services/{service.name}/src/",
        },
        {"src": "libs/common/src/**/*.py", "dest": SITE_PACKAGES, "strip": "libs/common/src/"},
    ]
    assert rules == expected
    # The synced path is where the image installs the package and what uvicorn watches.
    assert (ROOT / "services" / service.name / "src" / service.package).is_dir()
    dev_config = yaml.safe_load((ROOT / "infra/k8s/overlays/dev/config.yaml").read_text())
    assert dev_config["data"]["UVICORN_RELOAD"] == "true"
    assert dev_config["data"]["UVICORN_RELOAD_DIR"] == SITE_PACKAGES


def test_the_deploy_guide_covers_an_empty_cluster_to_a_working_site() -> None:
    guide = (ROOT / "docs" / "deploy.md").read_text()
    for needle in (
        "ingress-nginx",
        "StorageClass",
        "create secret generic jwt-secret",
        "JWT_KEY=$(openssl rand -hex 32)",
        "create secret generic stripe-secret",
        "kubectl apply -k infra/k8s/overlays/prod",
        "kubectl scale",
        "skaffold dev",
        "SKIP LOCKED",
        "Nats-Msg-Id",
    ):
        assert needle in guide, needle
    for service in SERVICES:
        assert f"services/{service.name}/Dockerfile" in guide or "services/<service>" in guide
        if service.database:
            assert f"create secret generic {service.name}-db" in guide
