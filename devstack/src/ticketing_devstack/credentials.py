"""The secrets ``ticketing up`` makes once per data directory and keeps there, readable
by their owner only: the session signing key (``<data-dir>/jwt_key``), each NATS user's
password and Redis's (``<data-dir>/credentials/nats-<user>``, ``…/redis``).

A restart reuses them, so sessions and the servers' data outlive it. Deleting one while
the stack is stopped rotates it: the next ``ticketing up`` makes a new one and gives it
to both the server and its clients.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from ticketing_common.embedded import write_private
from ticketing_common.natsauth import ADMIN_USER
from ticketing_common.spec import ServiceSpec

CREDENTIALS_DIR = "credentials"


def new_password() -> str:
    # Hex: safe unquoted in a URL and in the servers' configuration files.
    return secrets.token_hex(32)


def stored_secret(path: Path, make: Callable[[], str] = new_password) -> str:
    """The secret kept in ``path``, made (by ``make``) and kept there the first time."""
    with contextlib.suppress(FileNotFoundError):
        secret = path.read_text().strip()
        if secret:
            return secret
    secret = make()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(path, secret + "\n")
    return secret


def with_credentials(url: str, user: str, password: str) -> str:
    """``url`` with ``user:password@`` (the form nats-py and redis-py read)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(user, safe='')}:{password}@{host}"))


@dataclass(frozen=True)
class Credentials:
    """The servers' passwords of one data directory."""

    data_dir: Path

    @property
    def directory(self) -> Path:
        return self.data_dir / CREDENTIALS_DIR

    def _path(self, name: str) -> Path:
        return self.directory / name

    def nats_passwords(self, specs: Iterable[ServiceSpec[Any]]) -> dict[str, str]:
        """The password of ``admin`` and of each service on the bus, by user."""
        users = [ADMIN_USER, *(spec.name for spec in specs if spec.uses_nats)]
        return {user: stored_secret(self._path(f"nats-{user}")) for user in users}

    def redis_password(self) -> str:
        return stored_secret(self._path("redis"))

    def admin_nats_url(self, url: str) -> str:
        """``url`` with the operators' NATS credentials, once ``ticketing up`` made them
        (for tools run beside the stack: inspecting streams, replaying dead letters)."""
        try:
            password = self._path(f"nats-{ADMIN_USER}").read_text().strip()
        except FileNotFoundError:
            return url
        return with_credentials(url, ADMIN_USER, password)
