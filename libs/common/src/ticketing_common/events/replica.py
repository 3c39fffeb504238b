"""Version-ordered, idempotent replicas (SPEC §4): apply version v only at v-1.

A replica row (a ticket in orders, an order in payments) carries the owner's
``version``. Version 0 is an insert that does nothing if the row exists; version
v > 0 is a conditional update ``WHERE version = v-1`` whose row count decides.
An older or equal version is a duplicate (ack and ignore); a newer one is a gap,
raised as :class:`VersionGap` so the listener nacks it and it comes back later.

A record's *final* version (an order's cancellation: nothing follows it) need not
wait for its predecessors: applied with ``final=True`` it settles the record at
once, and the earlier versions, arriving later, are duplicates.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import Table, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase

from ticketing_common.events.listener import RetryLater


class VersionGap(RetryLater):
    def __init__(self, entity: str, entity_id: UUID, have: int | None, got: int) -> None:
        have_text = "nothing" if have is None else f"v{have}"
        super().__init__(f"{entity} {entity_id}: have {have_text}, got v{got}", delay=0.25)


class Applied(StrEnum):
    APPLIED = "applied"
    DUPLICATE = "duplicate"


async def apply_versioned(
    session: AsyncSession,
    model: type[DeclarativeBase],
    *,
    id: UUID,
    version: int,
    values: dict[str, Any],
    final: bool = False,
) -> Applied:
    """Apply one versioned change of a replicated record exactly once, in order.

    ``final``: ``version`` is the record's last; it is applied over any earlier
    version, or inserted when the record is unknown (``values`` must then fill a
    row), instead of waiting for the versions before it.
    """
    table = model.__table__
    assert isinstance(table, Table)
    if final:
        # One statement, so a concurrent insert of an earlier version cannot slip in
        # between a check and the write: whichever commits first, the final one wins.
        settled = await session.execute(
            insert(table)
            .values(id=id, version=version, **values)
            .on_conflict_do_update(
                index_elements=["id"],
                set_={"version": version, **values},
                where=table.c.version < version,
            )
            .returning(table.c.id)
        )
        return Applied.APPLIED if settled.first() is not None else Applied.DUPLICATE
    if version == 0:
        inserted = await session.execute(
            insert(table)
            .values(id=id, version=0, **values)
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(table.c.id)
        )
        return Applied.APPLIED if inserted.first() is not None else Applied.DUPLICATE
    updated = await session.execute(
        update(table)
        .where(table.c.id == id, table.c.version == version - 1)
        .values(version=version, **values)
        .returning(table.c.id)
    )
    if updated.first() is not None:
        return Applied.APPLIED
    current = (await session.execute(select(table.c.version).where(table.c.id == id))).scalar()
    if current is not None and current >= version:
        return Applied.DUPLICATE
    raise VersionGap(model.__name__, id, current, version)
