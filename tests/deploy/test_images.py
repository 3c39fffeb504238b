"""One image recipe for every package, a Skaffold artifact per image, and they agree.

No Docker engine is needed: the rules read the Dockerfile, ``.dockerignore`` and
``skaffold.yaml`` as text and YAML.
"""

from __future__ import annotations

import ast
import fnmatch
import importlib
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.specs import ROOT, SPEC_IDS, SPECS, needs_every_spec
from ticketing_common.spec import ServiceSpec

# The image's virtual environment and its site-packages, where Skaffold syncs source files.
VENV = "/app/.venv"
SITE_PACKAGES = f"{VENV}/lib/python3.11/site-packages"
APP_USER = "10001"


SERVICES = SPECS
SERVICE_IDS = SPEC_IDS


def read_pyproject(directory: str) -> dict[str, Any]:
    return tomllib.loads((ROOT / directory / "pyproject.toml").read_text())


def project_name(directory: str) -> str:
    name = read_pyproject(directory)["project"]["name"]
    assert isinstance(name, str)
    return name


def package_path(directory: str) -> str:
    """Where the project's importable package lives, e.g. ``src/ticketing_auth``."""
    packages = read_pyproject(directory)["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert len(packages) == 1, f"{directory}: one package per image"
    path = packages[0]
    assert isinstance(path, str)
    return path


def workspace_members() -> dict[str, str]:
    """Workspace project name -> its directory (``ticketing-common`` -> ``libs/common``)."""
    members = {}
    for pattern in ("libs/*/pyproject.toml", "services/*/pyproject.toml", "*/pyproject.toml"):
        for path in ROOT.glob(pattern):
            directory = str(path.parent.relative_to(ROOT))
            if directory != ".":
                members[project_name(directory)] = directory
    return members


def workspace_dependencies(directory: str) -> list[str]:
    """The directories of the workspace members the project depends on."""
    sources = read_pyproject(directory).get("tool", {}).get("uv", {}).get("sources", {})
    members = workspace_members()
    return [members[name] for name, source in sources.items() if source.get("workspace")]


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


def builds_and_their_manifests() -> list[tuple[dict[str, Any], list[str]]]:
    """Each Skaffold ``build`` section with the kustomize paths deployed with it."""
    config = skaffold()
    result = [(config["build"], config["manifests"]["kustomize"]["paths"])]
    for profile in config["profiles"]:
        if "build" in profile:
            manifests = profile.get("manifests", config["manifests"])
            result.append((profile["build"], manifests["kustomize"]["paths"]))
    return result


def images_in(kustomization_dir: Path) -> set[str]:
    """Every container image the kustomization's resources name, before any ``images:``
    rewrite (the names Skaffold replaces with the images it built)."""
    spec = yaml.safe_load((kustomization_dir / "kustomization.yaml").read_text())
    images: set[str] = set()
    for resource in spec.get("resources", []):
        path = (kustomization_dir / resource).resolve()
        if path.is_dir():
            images |= images_in(path)
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            pod = (doc or {}).get("spec", {}).get("template", {}).get("spec", {})
            for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
                images.add(container["image"])
    return images


def package_directories() -> dict[str, str]:
    """Importable package -> its workspace directory (``ticketing_auth`` -> ``services/auth``)."""
    return {Path(package_path(d)).name: d for d in workspace_members().values()}


def our_images() -> dict[str, str]:
    """Every image of ours: one per service, plus any other artifact Skaffold builds
    (the Stripe sandbox), as image name -> the workspace directory it packages."""
    images = {f"ticketing/{service.name}": f"services/{service.name}" for service in SERVICES}
    directories = package_directories()
    for build, _ in builds_and_their_manifests():
        for image, artifact in artifacts(build).items():
            images.setdefault(image, directories[artifact["docker"]["buildArgs"]["PACKAGE"]])
    return images


IMAGES = our_images()
IMAGE_IDS = [name.removeprefix("ticketing/") for name in IMAGES]
OTHER_IMAGES = {name: d for name, d in IMAGES.items() if not d.startswith("services/")}
DOCKERFILE = ROOT / "Dockerfile"


def test_one_portable_multi_stage_uv_dockerfile_builds_any_one_package() -> None:
    """Plain syntax that docker, podman and buildah all accept: no ``# syntax=`` frontend,
    no ``COPY --parents`` (BuildKit's labs frontend only), no ``RUN --mount``."""
    raw = DOCKERFILE.read_text()
    assert not re.search(r"^#\s*syntax=", raw, re.MULTILINE)
    steps = instructions(DOCKERFILE)
    text = " ".join(f"{keyword} {rest}" for keyword, rest in steps)
    assert "--parents" not in " ".join(rest for k, rest in steps if k == "COPY")
    assert "--mount" not in " ".join(rest for k, rest in steps if k == "RUN")
    assert len([k for k, _ in steps if k == "FROM"]) >= 3, "uv, build and runtime stages"
    assert re.search(r"ARG PYTHON_IMAGE=python:3\.11-slim", text)
    assert "FROM ${PYTHON_IMAGE}" in text
    uv_image = re.search(r"ARG UV_IMAGE=ghcr\.io/astral-sh/uv:(\S+)", text)
    assert uv_image, "uv comes from its official image, a build argument"
    assert re.fullmatch(r"\d+\.\d+\.\d+", uv_image.group(1)), "pinned"
    assert "FROM ${UV_IMAGE}" in text

    syncs = [rest for keyword, rest in steps if keyword == "RUN" and "uv sync" in rest]
    assert len(syncs) == 2, "third-party dependencies first, then the code"
    for sync in syncs:
        for flag in ("--frozen", "--no-dev", "--no-editable", '--package "${PACKAGE}"'):
            assert flag in sync, f"`uv sync` without {flag}"
        assert "--extra" not in sync
        assert "--all-extras" not in sync, "ticketing-common's embedded servers stay out"
    assert "--no-install-workspace" in syncs[0]


@pytest.mark.parametrize(("image", "directory"), IMAGES.items(), ids=IMAGE_IDS)
def test_every_image_package_is_a_workspace_member_with_an_app_factory(
    image: str, directory: str
) -> None:
    """The image runs ``<package>.app:create_app``; uv accepts the importable name as
    the project name (it normalises ``_`` and ``-``)."""
    package = Path(package_path(directory)).name
    assert project_name(directory).replace("-", "_") == package
    app = ast.parse((ROOT / directory / package_path(directory) / "app.py").read_text())
    defined = {node.name for node in app.body if isinstance(node, ast.FunctionDef)} | {
        target.id
        for node in app.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    # A function, or a service's ``create_app = SPEC.create_app``.
    assert "create_app" in defined, f"{image}: no {package}.app:create_app"


def imported_workspace_packages(directory: str) -> set[str]:
    """The ``ticketing_*`` packages the project's code imports (its tests excluded)."""
    imported: set[str] = set()
    for path in (ROOT / directory / package_path(directory)).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            imported |= {n.partition(".")[0] for n in names if n.startswith("ticketing_")}
    return imported


@pytest.mark.parametrize(("image", "directory"), IMAGES.items(), ids=IMAGE_IDS)
def test_every_workspace_package_an_image_imports_is_a_declared_dependency(
    image: str, directory: str
) -> None:
    """The image installs the project's declared dependencies only (``uv sync --package``),
    so an import of an undeclared workspace package works in the workspace and fails in
    the container at start-up."""
    declared = {Path(package_path(d)).name for d in (directory, *workspace_dependencies(directory))}
    undeclared = imported_workspace_packages(directory) - declared
    assert not undeclared, f"{directory}/pyproject.toml does not depend on {sorted(undeclared)}"


def runtime_stage() -> list[tuple[str, str]]:
    steps = instructions(DOCKERFILE)
    return steps[max(i for i, (k, _) in enumerate(steps) if k == "FROM") :]


def test_the_image_runs_as_a_non_root_user_that_cannot_change_its_code() -> None:
    """The code is copied without ``--chown``, so it stays owned by root and, with the
    build's default umask, read-only to uid 10001."""
    runtime = runtime_stage()
    users = [rest for keyword, rest in runtime if keyword == "USER"]
    assert users == [f"{APP_USER}:{APP_USER}"], "the final stage runs as 10001"
    copies = [rest for keyword, rest in runtime if keyword == "COPY"]
    assert copies == [f"--from=build {VENV} {VENV}"]
    runs = " ".join(rest for keyword, rest in runtime if keyword == "RUN")
    for change in ("chown", "chmod", "umask"):
        assert change not in runs, f"the runtime stage must not {change} the code"
    build = instructions(DOCKERFILE)[: len(instructions(DOCKERFILE)) - len(runtime)]
    assert not any(
        "umask" in rest or "chmod" in rest for keyword, rest in build if keyword == "RUN"
    )
    # uv leaves a lock file writable by everyone (0666) in the environment it syncs.
    code_sync = [rest for keyword, rest in build if keyword == "RUN" and "uv sync" in rest][-1]
    assert code_sync.endswith("&& rm -f .venv/.lock")


def test_the_image_runs_uvicorn_with_the_package_app_factory() -> None:
    runtime = runtime_stage()
    cmds = [yaml.safe_load(rest) for keyword, rest in runtime if keyword == "CMD"]
    # Exec form, so the server is PID 1 and gets SIGTERM; uvicorn reads its APP
    # argument from UVICORN_APP, which the build sets from PACKAGE.
    assert cmds == [["uvicorn", "--factory", "--host", "0.0.0.0", "--port", "8000"]]
    envs = " ".join(rest for keyword, rest in runtime if keyword == "ENV")
    assert 'UVICORN_APP="${PACKAGE}.app:create_app"' in envs


@pytest.mark.parametrize("service", SERVICES, ids=SERVICE_IDS)
def test_every_service_runs_the_app_factory_the_image_serves(service: ServiceSpec[Any]) -> None:
    """The image serves ``<PACKAGE>.app:create_app``, the stack ``spec.app_factory``: both
    build the app its spec describes, from the package its directory holds."""
    assert service.app_factory == f"{service.package}.app:create_app"
    assert Path(package_path(f"services/{service.name}")).name == service.package
    module = importlib.import_module(f"{service.package}.app")
    assert module.create_app == service.create_app


def _containers(image: str) -> list[dict[str, Any]]:
    found = []
    for path in (ROOT / "infra/k8s").rglob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if not isinstance(doc, dict):
                continue  # e.g. a JSON 6902 patch
            pod = doc.get("spec", {}).get("template", {}).get("spec", {})
            found += [c for c in pod.get("containers", []) if c.get("image") == image]
    return found


@pytest.mark.parametrize(("image", "directory"), OTHER_IMAGES.items(), ids=list(OTHER_IMAGES))
def test_every_other_image_runs_its_entry_point_on_port_8000_in_the_cluster(
    image: str, directory: str
) -> None:
    """The sandbox keeps its own entry point (JSON logs) through the container's command."""
    package = Path(package_path(directory)).name
    assert [container.get("command") for container in _containers(image)] == [
        ["python", "-m", package, "--host", "0.0.0.0", "--port", "8000"]
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
    for directory in IMAGES.values():
        assert not ignored(f"{directory}/pyproject.toml")
        assert not ignored(f"{directory}/{package_path(directory)}/__init__.py")
    for path in (".venv", "services/auth/.venv", ".git", "libs/common/tests", ".ticketing"):
        assert ignored(path), path


def test_skaffold_builds_exactly_the_images_each_deployment_runs_from_their_dockerfiles() -> None:
    """Every build section builds every service, plus the other images (the Stripe sandbox)
    exactly where the manifests deployed with it run them: nothing missing, nothing unused."""
    config = skaffold()
    assert config["apiVersion"].startswith("skaffold/v4")
    services = {f"ticketing/{service.name}" for service in SERVICES}
    for build, paths in builds_and_their_manifests():
        used = set().union(*(images_in(ROOT / path) for path in paths))
        built = artifacts(build)
        assert services <= set(built)
        for image, artifact in built.items():
            # The package built into each service's image is its spec's.
            spec = next((s for s in SERVICES if f"ticketing/{s.name}" == image), None)
            if spec is not None:
                assert artifact["docker"]["buildArgs"] == {"PACKAGE": spec.package}, image
        # Ours are named ticketing/<name>; postgres, nats and redis are pulled.
        assert set(built) == {image for image in used if image.startswith("ticketing/")}, paths
        for image, artifact in built.items():
            assert artifact.get("context", ".") == "."
            assert artifact["docker"]["dockerfile"] == "Dockerfile"
            package = Path(package_path(IMAGES[image])).name
            assert artifact["docker"]["buildArgs"] == {"PACKAGE": package}, image


@pytest.mark.parametrize("image", IMAGES, ids=IMAGE_IDS)
def test_skaffold_writes_each_image_once_and_refers_to_it_by_its_alias(image: str) -> None:
    """Under ``.images`` (a key Skaffold ignores, holding YAML anchors): the builds list
    aliases, so an image's build arguments cannot differ from one build to another."""
    text = (ROOT / "skaffold.yaml").read_text()
    assert text.count(f"image: {image}\n") == 1
    assert image.removeprefix("ticketing/") in skaffold()[".images"]


def test_every_build_makes_one_image_per_service_spec_and_no_other_service_image() -> None:
    needs_every_spec()
    services = {f"ticketing/{service.name}": service.package for service in SERVICES}
    directories = package_directories()
    for build, _ in builds_and_their_manifests():
        packaged = {
            image: artifact["docker"]["buildArgs"]["PACKAGE"]
            for image, artifact in artifacts(build).items()
            if directories[artifact["docker"]["buildArgs"]["PACKAGE"]].startswith("services/")
        }
        assert packaged == services


def test_skaffold_deploys_the_dev_overlay_and_prod_with_a_profile() -> None:
    config = skaffold()
    assert config["manifests"]["kustomize"]["paths"] == ["infra/k8s/overlays/dev"]
    profiles = {profile["name"]: profile for profile in config["profiles"]}
    assert profiles["prod"]["manifests"]["kustomize"]["paths"] == ["infra/k8s/overlays/prod"]
    for path in ("infra/k8s/overlays/dev", "infra/k8s/overlays/prod"):
        assert (ROOT / path / "kustomization.yaml").exists()


@pytest.mark.parametrize("service", SERVICES, ids=SERVICE_IDS)
def test_skaffold_dev_syncs_python_sources_into_the_image_site_packages(
    service: ServiceSpec[Any],
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
    assert rules[: len(expected)] == expected
    # Further rules sync package data the same way (web's templates and static files,
    # which Jinja2 and StaticFiles read from disk on each request): only files of this
    # service, to the same place, and each rule matches files that exist.
    src = ROOT / "services" / service.name / "src"
    for rule in rules[len(expected) :]:
        assert rule["dest"] == SITE_PACKAGES, rule
        assert rule["strip"] == f"services/{service.name}/src/", rule
        assert rule["src"].startswith(f"services/{service.name}/src/**/"), rule
        assert list(src.rglob(rule["src"].removeprefix(f"services/{service.name}/src/**/"))), rule
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
    assert "--build-arg PACKAGE=" in guide
    for service in SERVICES:
        if service.needs_database:
            assert f"create secret generic {service.name}-db" in guide
