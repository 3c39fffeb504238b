"""Version-ordered replicas: apply v only at v-1, ignore duplicates, hold back gaps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, mapped_column

from ticketing_common.db import Database, ServiceBase
from ticketing_common.events.replica import Applied, VersionGap, apply_versioned


class ReplicaBase(ServiceBase):
    pass


class Copy(ReplicaBase):
    __tablename__ = "copies"
    id: Mapped[UUID] = mapped_column(primary_key=True)
    version: Mapped[int]
    title: Mapped[str] = mapped_column(String(200))


@pytest.fixture
async def database(database_url: str) -> AsyncIterator[Database]:
    db = Database(database_url)
    async with db.engine.begin() as connection:
        await connection.run_sync(ReplicaBase.metadata.create_all)
    yield db
    await db.dispose()


async def apply(
    database: Database, record_id: UUID, version: int, *, final: bool = False
) -> Applied:
    async with database.transaction() as session:
        return await apply_versioned(
            session,
            Copy,
            id=record_id,
            version=version,
            values={"title": f"v{version}"},
            final=final,
        )


async def state(database: Database, record_id: UUID) -> tuple[int, str] | None:
    async with database.transaction() as session:
        row = (
            await session.execute(select(Copy.version, Copy.title).where(Copy.id == record_id))
        ).first()
        return None if row is None else (row.version, row.title)


async def test_versions_in_order_are_applied(database: Database) -> None:
    record_id = uuid4()
    for version in range(3):
        assert await apply(database, record_id, version) is Applied.APPLIED
    assert await state(database, record_id) == (2, "v2")


async def test_duplicate_or_older_version_is_ignored(database: Database) -> None:
    record_id = uuid4()
    for version in range(3):
        await apply(database, record_id, version)
    assert await apply(database, record_id, 0) is Applied.DUPLICATE
    assert await apply(database, record_id, 1) is Applied.DUPLICATE
    assert await apply(database, record_id, 2) is Applied.DUPLICATE
    assert await state(database, record_id) == (2, "v2")


async def test_version_after_a_gap_is_held_back_until_the_gap_is_filled(
    database: Database,
) -> None:
    record_id = uuid4()
    await apply(database, record_id, 0)
    with pytest.raises(VersionGap):
        await apply(database, record_id, 2)
    assert await state(database, record_id) == (0, "v0")
    await apply(database, record_id, 1)
    assert await apply(database, record_id, 2) is Applied.APPLIED
    assert await state(database, record_id) == (2, "v2")


async def test_update_before_the_record_exists_is_a_gap(database: Database) -> None:
    with pytest.raises(VersionGap):
        await apply(database, uuid4(), 1)


async def test_a_final_version_before_the_record_exists_settles_it_and_outranks_the_rest(
    database: Database,
) -> None:
    record_id = uuid4()
    assert await apply(database, record_id, 2, final=True) is Applied.APPLIED
    for version in range(3):
        assert await apply(database, record_id, version) is Applied.DUPLICATE
    assert await apply(database, record_id, 2, final=True) is Applied.DUPLICATE
    assert await state(database, record_id) == (2, "v2")


async def test_a_final_version_applies_over_any_earlier_one(database: Database) -> None:
    record_id = uuid4()
    await apply(database, record_id, 0)
    assert await apply(database, record_id, 2, final=True) is Applied.APPLIED
    assert await state(database, record_id) == (2, "v2")


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data(), last=st.integers(min_value=0, max_value=5))
def test_any_delivery_order_with_duplicates_ends_like_in_order_exactly_once(
    database_url: str, data: st.DataObject, last: int
) -> None:
    versions = list(range(last + 1))
    deliveries = data.draw(
        st.lists(st.sampled_from(versions), min_size=0, max_size=8).map(
            lambda extra: versions + extra
        )
    )
    deliveries = data.draw(st.permutations(deliveries))

    async def scenario() -> tuple[int, str] | None:
        database = Database(database_url, pool_size=2)
        try:
            async with database.engine.begin() as connection:
                await connection.run_sync(ReplicaBase.metadata.create_all)
            record_id = uuid4()
            queue = list(deliveries)
            # A broker's redelivery: a gap goes to the back of the queue and comes back later.
            while queue:
                version = queue.pop(0)
                try:
                    await apply(database, record_id, version)
                except VersionGap:
                    queue.append(version)
            return await state(database, record_id)
        finally:
            await database.dispose()

    assert asyncio.run(scenario()) == (last, f"v{last}")
