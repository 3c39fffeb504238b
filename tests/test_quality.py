"""Lint, format and types are part of the test command, so they stay green."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CODE = [
    path
    for path in ("libs", "services", "devstack", "tests", "bench", "infra")
    if any((ROOT / path).rglob("*.py"))
]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_ruff_finds_no_lint() -> None:
    result = run("ruff", "check", *CODE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_code_is_ruff_formatted() -> None:
    result = run("ruff", "format", "--check", *CODE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_finds_no_type_errors() -> None:
    # No arguments: the files are pyproject's [tool.mypy] files, what a developer's
    # `uv run mypy` checks too.
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr
