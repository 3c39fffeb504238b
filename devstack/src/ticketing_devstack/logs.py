"""``ticketing logs``: read the log files ``ticketing up`` keeps in ``<data-dir>/logs``.

Every process appends to ``<name>.log`` there, across restarts and runs (the servers'
own files are linked in), so the logs can be read while the stack runs or after.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from ticketing_devstack.processes import LOG_DIR, LogFollower, LogPrinter, log_file_name


class UnknownLogError(Exception):
    def __init__(self, name: str, known: Sequence[str]) -> None:
        listed = ", ".join(known) or "none yet"
        super().__init__(f"No log named {name!r}; known: {listed}")


def log_files(data_dir: Path) -> dict[str, Path]:
    """Each log's name (``stripe-sandbox`` for the Stripe sandbox) and file, by name."""
    directory = data_dir / LOG_DIR
    if not directory.is_dir():
        return {}
    return {path.stem: path for path in sorted(directory.glob("*.log")) if path.exists()}


def select(data_dir: Path, name: str | None) -> dict[str, Path]:
    """The log of ``name`` (as ``ticketing status`` names it, or as its file is named),
    or every log when ``name`` is None."""
    files = log_files(data_dir)
    if name is None:
        return files
    stem = log_file_name(name).removesuffix(".log")
    if stem not in files:
        raise UnknownLogError(name, list(files))
    return {stem: files[stem]}


def last_lines(path: Path, count: int) -> list[str]:
    """The last ``count`` lines of ``path`` (every line when ``count`` is 0)."""
    with path.open("rb") as file:
        lines = (raw.decode("utf-8", errors="replace").rstrip("\n") for raw in file)
        kept = deque(lines, maxlen=count or None)
    return list(kept)


def show(files: dict[str, Path], printer: LogPrinter, *, lines: int, follow: bool) -> None:
    """Print the last ``lines`` of each file, then, with ``follow``, what is appended
    until interrupted."""
    followers = [LogFollower(name, path, printer) for name, path in files.items()]
    for follower in followers:
        for line in last_lines(follower.path, lines):
            if line:
                printer.line(follower.name, line)
    while follow:
        time.sleep(0.2)
        for follower in followers:
            follower.pump()
