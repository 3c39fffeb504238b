"""The rendered manifests, shared by the deploy tests."""

from __future__ import annotations

import pytest

from tests.deploy.rendering import TARGETS, Rendered, declared_secrets, render


@pytest.fixture(scope="session")
def rendered() -> dict[str, Rendered]:
    return {target: Rendered(target, render(target)) for target in TARGETS}


@pytest.fixture(scope="session")
def dev_secrets() -> dict[str, dict[str, str]]:
    return declared_secrets()
