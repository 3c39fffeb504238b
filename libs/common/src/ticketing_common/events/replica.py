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

from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any
from uuid import UUID

from sqlalchemy import Executable, Table, bindparam, select, update
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


@dataclass(frozen=True)
class _Statements:
    """The statements that apply one table's changes of one shape (the columns they set).

    Built once and reused with bound parameters: a statement object built per event
    cost about as much Python CPU (coercing its values, computing its compiled-cache
    key) as executing it."""

    settle: Executable  # final: insert, or overwrite any earlier version
    insert: Executable  # version 0: insert unless the row exists
    advance: Executable  # version v: update the row at v-1
    current: Executable  # the row's version


def _param(column: str) -> str:
    # Prefixed: SQLAlchemy reserves a column's own name for its implicit SET parameter.
    return f"p_{column}"


@cache
def _statements(table: Table, columns: frozenset[str]) -> _Statements:
    values = {
        name: bindparam(_param(name), type_=table.c[name].type)
        for name in ("version", *sorted(columns))
    }
    row_id = bindparam(_param("id"), type_=table.c.id.type)
    new = insert(table).values(id=row_id, **values)
    return _Statements(
        settle=new.on_conflict_do_update(
            index_elements=["id"],
            set_={name: new.excluded[name] for name in values},
            where=table.c.version < new.excluded.version,
        ).returning(table.c.id),
        insert=new.on_conflict_do_nothing(index_elements=["id"]).returning(table.c.id),
        advance=update(table)
        .where(
            table.c.id == row_id,
            table.c.version == bindparam("prior", type_=table.c.version.type),
        )
        .values(**values)
        .returning(table.c.id),
        current=select(table.c.version).where(table.c.id == row_id),
    )


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
    statements = _statements(table, frozenset(values))
    params = {_param(name): value for name, value in values.items()}
    params[_param("id")] = id
    params[_param("version")] = version
    if final:
        # One statement, so a concurrent insert of an earlier version cannot slip in
        # between a check and the write: whichever commits first, the final one wins.
        settled = await session.execute(statements.settle, params)
        return Applied.APPLIED if settled.first() is not None else Applied.DUPLICATE
    if version == 0:
        inserted = await session.execute(statements.insert, params)
        return Applied.APPLIED if inserted.first() is not None else Applied.DUPLICATE
    updated = await session.execute(statements.advance, {**params, "prior": version - 1})
    if updated.first() is not None:
        return Applied.APPLIED
    current = (await session.execute(statements.current, params)).scalar()
    if current is not None and current >= version:
        return Applied.DUPLICATE
    raise VersionGap(model.__name__, id, current, version)
