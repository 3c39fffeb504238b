"""The services the deployment lists must agree with: their specs (the chaos run also
skips, naming them, while some spec is missing).

Every directory under ``services/`` registers its ``ServiceSpec`` under the
``ticketing.services`` entry point; the deploy tests take the names, prefixes,
packages, databases and needs from the specs installed in this environment
(``installed_specs``). A directory whose spec does not load fails
``test_every_service_directory_registers_a_spec_that_loads``; the tests that compare
the whole list (every Deployment, the ingress, the skaffold artifacts) are skipped
meanwhile, naming the missing services, rather than failing once each for the same cause.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from ticketing_common.spec import ENTRY_POINT_GROUP, ServiceSpec, installed_specs

ROOT = Path(__file__).resolve().parents[2]

SPECS: tuple[ServiceSpec[Any], ...] = installed_specs()
SPEC_IDS = [spec.name for spec in SPECS]


def service_directories() -> dict[str, Path]:
    """Directory name -> directory, for each ``services/*`` project."""
    return {path.parent.name: path.parent for path in ROOT.glob("services/*/pyproject.toml")}


def declared_entry_points(directory: Path) -> dict[str, str]:
    """The ``ticketing.services`` entry points a project's pyproject declares."""
    project = tomllib.loads((directory / "pyproject.toml").read_text())["project"]
    declared: dict[str, str] = project.get("entry-points", {}).get(ENTRY_POINT_GROUP, {})
    return declared


MISSING = sorted(set(service_directories()) - {spec.name for spec in SPECS})
"""Service directories without an installed spec that loads."""


def needs_every_spec() -> None:
    """Skip a test that compares the whole list of services while some spec is missing."""
    if MISSING:
        pytest.skip(
            f"compares every service, and the specs of {', '.join(MISSING)} do not load "
            "here (see test_every_service_directory_registers_a_spec_that_loads)"
        )
