"""Auth's migrations build exactly the schema its models describe, and can be undone."""

from __future__ import annotations

import asyncio

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from ticketing_auth.models import Base
from ticketing_common.db import Database, asyncpg_url, migrations_dir, upgrade_to_head


def _differences(connection: Connection) -> list[object]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def _tables(connection: Connection) -> set[str]:
    return set(inspect(connection).get_table_names())


async def test_migrated_database_matches_the_models(migrated_url: str) -> None:
    database = Database(migrated_url, pool_size=1)
    try:
        async with database.engine.connect() as connection:
            assert await connection.run_sync(_differences) == []
    finally:
        await database.dispose()


async def test_migrations_downgrade_to_an_empty_database_and_upgrade_again(
    migrated_url: str,
) -> None:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir("ticketing_auth")))
    config.set_main_option("sqlalchemy.url", asyncpg_url(migrated_url))

    await asyncio.to_thread(command.downgrade, config, "base")
    database = Database(migrated_url, pool_size=1)
    try:
        async with database.engine.connect() as connection:
            assert await connection.run_sync(_tables) == {"alembic_version"}
        await asyncio.to_thread(upgrade_to_head, "ticketing_auth", migrated_url)
        async with database.engine.connect() as connection:
            assert await connection.run_sync(_tables) >= {"users", "signin_counters"}
    finally:
        await database.dispose()


@pytest.mark.parametrize("table", ["users", "signin_counters"])
def test_models_name_their_tables(table: str) -> None:
    assert table in Base.metadata.tables
