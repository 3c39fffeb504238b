"""Orders' migrations build exactly the schema its models (and the outbox) describe."""

from __future__ import annotations

import asyncio

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection

from ticketing_common.db import Database, asyncpg_url, migrations_dir, upgrade_to_head
from ticketing_common.events.outbox import outbox_metadata
from ticketing_orders.models import Base


def _differences(connection: Connection) -> list[object]:
    # One MetaData holding both, as the migration environment's target list does.
    target = MetaData()
    for table in [*Base.metadata.tables.values(), *outbox_metadata.tables.values()]:
        table.to_metadata(target)
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, target))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_migrated_database_matches_the_models_and_the_outbox(migrated_url: str) -> None:
    database = Database(migrated_url, pool_size=1)
    try:
        async with database.engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
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
    config = Config()
    config.set_main_option("script_location", str(migrations_dir("ticketing_orders")))
    config.set_main_option("sqlalchemy.url", asyncpg_url(migrated_url))

    await asyncio.to_thread(command.downgrade, config, "base")
    database = Database(migrated_url, pool_size=1)
    try:
        async with database.engine.connect() as connection:
            assert await connection.run_sync(_tables) == {"alembic_version"}
        await asyncio.to_thread(upgrade_to_head, "ticketing_orders", migrated_url)
        async with database.engine.connect() as connection:
            assert await connection.run_sync(_tables) >= {"tickets", "orders", "outbox"}
    finally:
        await database.dispose()
