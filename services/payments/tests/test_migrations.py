"""Payments' migrations build exactly the schema its models (and the outbox) describe."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

from ticketing_common.events.outbox import outbox_metadata
from ticketing_common.testing.migrations import (
    downgrade_to_base,
    schema_differences,
    table_names,
    upgrade,
)
from ticketing_payments.models import Base


async def test_migrated_database_matches_the_models_and_the_outbox(migrated_url: str) -> None:
    assert await schema_differences(migrated_url, Base.metadata, outbox_metadata) == []


async def test_migrations_downgrade_to_an_empty_database_and_upgrade_again(
    migrated_url: str,
) -> None:
    await downgrade_to_base("ticketing_payments", migrated_url)
    assert await table_names(migrated_url) == {"alembic_version"}
    await upgrade("ticketing_payments", migrated_url)
    assert await table_names(migrated_url) >= {"orders", "payments", "outbox"}


async def test_the_migrate_command_builds_the_schema_from_database_url(database_url: str) -> None:
    """What ``ticketing up`` and the Kubernetes migration Job run."""
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "ticketing_common.migrate", "ticketing_payments"],
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert await table_names(database_url) >= {"orders", "payments", "outbox", "alembic_version"}
