"""Fixtures shared by the shared library's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ticketing_common.db import Database
from ticketing_common.events.outbox import outbox_metadata


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    """A fresh database with the shared outbox table."""
    db = Database(database_url)
    async with db.engine.begin() as connection:
        await connection.run_sync(outbox_metadata.create_all)
    yield db
    await db.dispose()
