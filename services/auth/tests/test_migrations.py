"""Auth's migrations build exactly the schema its models (and the outbox) describe, and
can be undone."""

from __future__ import annotations

from ticketing_auth.models import Base
from ticketing_common.events.outbox import outbox_metadata
from ticketing_common.testing.migrations import (
    downgrade_to_base,
    schema_differences,
    table_names,
    upgrade,
)


async def test_migrated_database_matches_the_models_and_the_outbox(migrated_url: str) -> None:
    assert await schema_differences(migrated_url, Base.metadata, outbox_metadata) == []


async def test_migrations_downgrade_to_an_empty_database_and_upgrade_again(
    migrated_url: str,
) -> None:
    await downgrade_to_base("ticketing_auth", migrated_url)
    assert await table_names(migrated_url) == {"alembic_version"}
    await upgrade("ticketing_auth", migrated_url)
    assert await table_names(migrated_url) == {
        "alembic_version",
        "users",
        "sessions",
        "signin_counters",
        "outbox",
    }
