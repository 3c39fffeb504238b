"""Orders' migrations build exactly the schema its models (and the outbox) describe."""

from __future__ import annotations

from sqlalchemy import text

from ticketing_common.db import Database
from ticketing_common.events.outbox import outbox_metadata
from ticketing_common.testing.migrations import (
    downgrade_to_base,
    schema_differences,
    table_names,
    upgrade,
)
from ticketing_orders.models import Base


async def test_migrated_database_matches_the_models_and_the_outbox(migrated_url: str) -> None:
    assert await schema_differences(migrated_url, Base.metadata, outbox_metadata) == []
    database = Database(migrated_url, pool_size=1)
    try:
        async with database.engine.connect() as connection:
            # The reservation lock is a partial unique index on the holding statuses.
            definition = await connection.scalar(
                text("SELECT indexdef FROM pg_indexes WHERE indexname = :name"),
                {"name": "uq_orders_ticket_id_reserving"},
            )
        assert definition is not None
        assert "UNIQUE" in definition
        for status in ("created", "awaiting:payment", "complete"):
            assert f"'{status}'" in definition
        assert "'cancelled'" not in definition
    finally:
        await database.dispose()


async def test_migrations_downgrade_to_an_empty_database_and_upgrade_again(
    migrated_url: str,
) -> None:
    await downgrade_to_base("ticketing_orders", migrated_url)
    assert await table_names(migrated_url) == {"alembic_version"}
    await upgrade("ticketing_orders", migrated_url)
    assert await table_names(migrated_url) >= {"tickets", "orders", "outbox"}
