"""Version-ordered replicas: apply v only at v-1, ignore duplicates, hold back gaps."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from decimal import Decimal
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, mapped_column

from ticketing_common.db import Database, ServiceBase
from ticketing_common.events.contracts import Envelope, TicketCreated
from ticketing_common.events.replica import (
    Applied,
    Change,
    VersionGap,
    applied_together,
    apply_change,
    apply_many,
    apply_versioned,
)


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


async def apply_at_once(database: Database, changes: list[Change]) -> set[UUID]:
    async with database.transaction() as session:
        return await apply_many(session, Copy, changes)


def change(record_id: UUID, version: int) -> Change:
    return Change(id=record_id, version=version, values={"title": f"v{version}"})


async def test_changes_of_distinct_records_apply_at_once_and_leave_duplicates_and_gaps_alone(
    database: Database,
) -> None:
    at_one, at_zero, at_three = uuid4(), uuid4(), uuid4()
    for version in range(2):
        await apply(database, at_one, version)
    await apply(database, at_zero, 0)
    for version in range(4):
        await apply(database, at_three, version)
    new, unknown = uuid4(), uuid4()
    applied = await apply_at_once(
        database,
        [
            change(new, 0),  # inserted
            change(at_one, 2),  # advanced from v1
            change(at_zero, 0),  # a duplicate insert
            change(at_three, 2),  # an older version: a duplicate
            change(unknown, 3),  # a gap: nothing before it
        ],
    )
    assert applied == {new, at_one}
    assert await state(database, new) == (0, "v0")
    assert await state(database, at_one) == (2, "v2")
    assert await state(database, at_zero) == (0, "v0")
    assert await state(database, at_three) == (3, "v3")
    assert await state(database, unknown) is None
    # What was not applied is told apart one at a time, as always.
    assert await apply(database, at_zero, 0) is Applied.DUPLICATE
    with pytest.raises(VersionGap):
        await apply(database, unknown, 3)


def ticket(record_id: UUID, version: int) -> Envelope[TicketCreated]:
    return Envelope.of(
        TicketCreated(
            id=record_id,
            version=version,
            title=f"v{version}",
            price=Decimal("5"),
            user_id=record_id,
        )
    )


def change_of(event: Envelope[TicketCreated]) -> Change:
    return Change(id=event.data.id, version=event.data.version, values={"title": event.data.title})


async def test_a_batch_step_claims_only_the_first_change_of_each_record_it_applies(
    database: Database,
) -> None:
    first, second, alone, known = uuid4(), uuid4(), uuid4(), uuid4()
    await apply(database, known, 0)
    events = [
        ticket(first, 0),
        ticket(first, 1),  # its record's second change in the batch: the handler's
        ticket(alone, 0),  # ``unless``: its handler does more than its change
        ticket(second, 0),
        ticket(known, 0),  # a duplicate: not applied, so the handler's to tell
        ticket(second, 1),
    ]
    step = applied_together(Copy, change_of, unless=lambda event: event.data.id == alone)
    async with database.transaction() as session:
        claimed = await step(events, session)
    assert claimed == {0, 3}
    assert await state(database, first) == (0, "v0")
    assert await state(database, second) == (0, "v0")
    assert await state(database, alone) is None


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data(), last=st.integers(min_value=0, max_value=4))
def test_any_batches_of_any_delivery_order_end_like_in_order_exactly_once(
    database_url: str, data: st.DataObject, last: int
) -> None:
    """Deliveries of three records' versions, with duplicates, in any order, fetched in
    batches of any size: each batch's first change of each record applied at once
    (``applied_together``), the rest one at a time in order, a gap sent to the back of
    the queue as a broker's redelivery would. Every record ends at its last version."""
    records = [uuid4() for _ in range(3)]
    versions = [(record, version) for record in records for version in range(last + 1)]
    extra = data.draw(st.lists(st.sampled_from(versions), max_size=8))
    queue = data.draw(st.permutations(versions + extra))
    sizes = data.draw(st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=6))

    async def scenario() -> list[tuple[int, str] | None]:
        database = Database(database_url, pool_size=2)
        step = applied_together(Copy, change_of)
        try:
            async with database.engine.begin() as connection:
                await connection.run_sync(ReplicaBase.metadata.create_all)
            pending = list(queue)
            turn = 0
            while pending:
                size = sizes[turn % len(sizes)]
                turn += 1
                batch, pending = pending[:size], pending[size:]
                events = [ticket(record, version) for record, version in batch]
                async with database.transaction() as session:
                    claimed = await step(events, session)
                    for index, event in enumerate(events):
                        if index in claimed:
                            continue
                        try:
                            await apply_change(session, Copy, change_of(event))
                        except VersionGap:
                            pending.append(batch[index])  # redelivered later
            return [await state(database, record) for record in records]
        finally:
            await database.dispose()

    assert asyncio.run(scenario()) == [(last, f"v{last}")] * len(records)
