"""The body of every service's Alembic ``env.py``: async engine, one metadata list.

A service's ``migrations/env.py`` is two lines::

    from ticketing_common.alembic_env import run
    from ticketing_auth.models import Base
    run(Base.metadata)
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import MetaData, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from ticketing_common.events.outbox import outbox_metadata


def _run_sync(connection: Connection, metadata: list[MetaData]) -> None:
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(metadata: list[MetaData]) -> None:
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = create_async_engine(url, poolclass=pool.NullPool)
    async with engine.connect() as connection:
        await connection.run_sync(_run_sync, metadata)
    await engine.dispose()


def run(metadata: MetaData, *, with_outbox: bool = True) -> None:
    targets = [metadata, outbox_metadata] if with_outbox else [metadata]
    if context.is_offline_mode():
        context.configure(url=context.config.get_main_option("sqlalchemy.url"))
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_async(targets))
