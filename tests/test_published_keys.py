"""Every JWT key written anywhere in the repository is in the library's list of
published keys, which production refuses (ticketing_common.settings)."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

from ticketing_common.settings import DEVELOPMENT_JWT_KEY, PUBLISHED_JWT_KEYS

ROOT = Path(__file__).resolve().parents[1]
# Python: a string literal (possibly repeated, "x" * 40) given to JWT_KEY or a *_JWT_KEY
# constant, as a keyword, an assignment or a dict entry.
_PYTHON_KEY = re.compile(
    r"""JWT_KEY["']?\s*[:=]\s*(?P<literal>"[^"\n]*"|'[^'\n]*')(?:\s*\*\s*(?P<times>\d+))?"""
)
# Manifests, env files, shell and docs: JWT_KEY: value or JWT_KEY=value. A value made
# at run time ($(openssl rand ...), ${VAR}) is not a published key.
_PLAIN_KEY = re.compile(r"""JWT_KEY["']?\s*[:=][ \t]*["']?(?P<value>[^\s"'$`{|]+)""")
_TEXT_SUFFIXES = {".py", ".yaml", ".yml", ".md", ".toml", ".env", ".json", ".sh", ".txt", ".cfg"}


def _repository_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    paths = [ROOT / name for name in listed]
    return [
        path
        for path in paths
        if path.is_file() and (path.suffix in _TEXT_SUFFIXES or ".env" in path.name)
    ] + [ROOT / ".ci" / "run"]


def keys_in(path: Path) -> set[str]:
    text = path.read_text(errors="replace")
    if path.suffix == ".py":
        return {
            ast.literal_eval(match["literal"]) * int(match["times"] or 1)
            for match in _PYTHON_KEY.finditer(text)
        }
    return {match["value"] for match in _PLAIN_KEY.finditer(text)}


def test_the_scan_finds_the_keys_it_must() -> None:
    found = {key for path in _repository_files() for key in keys_in(path)}

    assert DEVELOPMENT_JWT_KEY in found
    assert "development-cluster-jwt-key-0123456789abcdef" in found
    assert "x" * 40 in found


def test_every_jwt_key_in_the_repository_is_published_so_production_refuses_it() -> None:
    unlisted = {
        f"{path.relative_to(ROOT)}: {key!r}"
        for path in _repository_files()
        for key in keys_in(path)
        if key not in PUBLISHED_JWT_KEYS
    }

    assert not unlisted, (
        "JWT keys written in the repository must be listed in "
        f"ticketing_common.settings.PUBLISHED_JWT_KEYS: {sorted(unlisted)}"
    )
