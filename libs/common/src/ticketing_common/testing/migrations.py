"""Checks every service runs on its own migrations: they build exactly what the models
describe, and they can be undone and redone."""

from __future__ import annotations

import asyncio

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import MetaData, inspect
from sqlalchemy.engine import Connection

from ticketing_common.db import Database, alembic_config, upgrade_to_head


def _merged(metadatas: tuple[MetaData, ...]) -> MetaData:
    # One MetaData holding all, as the migration environment's target list does.
    target = MetaData()
    for metadata in metadatas:
        for table in metadata.tables.values():
            table.to_metadata(target)
    return target


async def schema_differences(database_url: str, *metadatas: MetaData) -> list[object]:
    """What Alembic's autogenerate would still change: empty when migrations match models."""
    target = _merged(metadatas)

    def compare(connection: Connection) -> list[object]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, target))

    database = Database(database_url, pool_size=1)
    try:
        async with database.engine.connect() as connection:
            return await connection.run_sync(compare)
    finally:
        await database.dispose()


async def table_names(database_url: str) -> set[str]:
    def names(connection: Connection) -> set[str]:
        return set(inspect(connection).get_table_names())

    database = Database(database_url, pool_size=1)
    try:
        async with database.engine.connect() as connection:
            return await connection.run_sync(names)
    finally:
        await database.dispose()


async def downgrade_to_base(package: str, database_url: str) -> None:
    config = alembic_config(package, database_url)
    await asyncio.to_thread(command.downgrade, config, "base")


async def upgrade(package: str, database_url: str) -> None:
    await asyncio.to_thread(upgrade_to_head, package, database_url)
