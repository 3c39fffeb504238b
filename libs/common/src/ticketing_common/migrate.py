"""``python -m ticketing_common.migrate <package>``: upgrade a service's database to head.

Reads ``DATABASE_URL``. Used by ``ticketing up`` and by the Kubernetes migration Job.
"""

from __future__ import annotations

import sys

from pydantic_settings import BaseSettings, SettingsConfigDict

from ticketing_common.db import upgrade_to_head


class MigrationSettings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=True, extra="ignore")

    DATABASE_URL: str


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m ticketing_common.migrate <service package>", file=sys.stderr)
        return 2
    upgrade_to_head(argv[0], MigrationSettings().DATABASE_URL)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
