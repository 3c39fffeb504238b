"""``python -m ticketing_devstack.migrate NAME=PACKAGE ...``: upgrade the database of each
named service to head, one after the other, in this one process.

``ticketing up`` runs this once rather than one ``python -m ticketing_common.migrate``
per service: each of those imports SQLAlchemy, Alembic and a service's models, seconds
of CPU apiece, and five of them at once were a large part of the start-up on two cores,
while the migrations themselves take a fraction of a second. Each database's URL is read
from ``DATABASE_URL_<NAME>`` (upper case), not the command line, where a password would
be visible to every user of the machine.

It prints ``migrating NAME`` before each service and ``migrated NAME`` after it; when a
migration fails it prints the traceback and, last, ``FAILED_LINE``, and exits with 1.
"""

from __future__ import annotations

import os
import sys
import traceback

from ticketing_common.db import upgrade_to_head

FAILED_LINE = "migrations of {name} failed"
"""The last line when a service's migrations fail; ``ticketing up`` names the service from it."""


def url_variable(name: str) -> str:
    """The variable that holds the database URL of the service ``name``."""
    return f"DATABASE_URL_{name.upper()}"


def argument(name: str, package: str) -> str:
    """One command-line argument: the service ``name`` and its ``package``."""
    return f"{name}={package}"


def main(argv: list[str]) -> int:
    if not argv or any("=" not in arg for arg in argv):
        print("usage: python -m ticketing_devstack.migrate NAME=PACKAGE ...", file=sys.stderr)
        return 2
    for arg in argv:
        name, package = arg.split("=", 1)
        print(f"migrating {name}", flush=True)
        try:
            upgrade_to_head(package, os.environ[url_variable(name)])
        except Exception:
            traceback.print_exc()
            print(FAILED_LINE.format(name=name), flush=True)
            return 1
        print(f"migrated {name}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
