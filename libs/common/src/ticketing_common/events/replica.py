"""Version-ordered, idempotent replicas (SPEC §4): apply version v only at v-1.

A replica row (a ticket in orders, an order in payments) carries the owner's
``version``. Version 0 is an insert that does nothing if the row exists; version
v > 0 is a conditional update ``WHERE version = v-1`` whose row count decides.
An older or equal version is a duplicate (ack and ignore); a newer one is a gap,
raised as :class:`VersionGap` so the listener nacks it and it comes back later.

A record's *final* version (an order's cancellation: nothing follows it) need not
wait for its predecessors: applied with ``final=True`` it settles the record at
once, and the earlier versions, arriving later, are duplicates.

A listener's fetched batch is applied mostly in one statement (``applied_together``):
the first change of each record in the batch, inserted or advanced by its version in
one INSERT and one UPDATE over all of them; what that does not apply (a duplicate, a
gap, a record's second change in the batch) goes through ``apply_versioned``, one at
a time, which tells a duplicate from a gap as always.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any
from uuid import UUID

from sqlalchemy import Executable, String, Table, bindparam, cast, column, func, select, update
from sqlalchemy.dialects.postgresql import JSONB, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import DeclarativeBase

from ticketing_common.db import Database
from ticketing_common.events.contracts import Envelope, P
from ticketing_common.events.listener import BatchStep, RetryLater, Transactional, transactional


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


@dataclass(frozen=True)
class Change:
    """One versioned change of a replicated record, as ``apply_versioned`` takes it."""

    id: UUID
    version: int
    values: dict[str, Any]


async def apply_change(
    session: AsyncSession, model: type[DeclarativeBase], change: Change
) -> Applied:
    return await apply_versioned(
        session, model, id=change.id, version=change.version, values=change.values
    )


@dataclass(frozen=True)
class _Together:
    """The two statements that apply many changes of one shape at once: each row of the
    ``rows`` parameter (a JSON array of objects) is a change."""

    insert: Executable  # version 0: insert the rows that do not exist
    advance: Executable  # version v: update the rows at v-1


@cache
def _together(table: Table, columns: frozenset[str]) -> _Together:
    names = ["id", "version", *sorted(columns)]
    # The rows as a relation typed by the table's own columns (jsonb_to_recordset's
    # column definitions), from one parameter whatever their number.
    rows = (
        func.jsonb_to_recordset(cast(bindparam("rows", type_=String), JSONB))
        .table_valued(*(column(name, table.c[name].type) for name in names))
        .render_derived(name="change", with_types=True)
    )
    new = (
        insert(table)
        .from_select(names, select(*(rows.c[name] for name in names)))
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(table.c.id)
    )
    advance = (
        update(table)
        .where(table.c.id == rows.c.id, table.c.version == rows.c.version - 1)
        .values({name: rows.c[name] for name in names[1:]})
        .returning(table.c.id)
    )
    return _Together(insert=new, advance=advance)


def _rows(changes: Sequence[Change]) -> str:
    # default=str: ids, times and decimals as PostgreSQL reads them back from text.
    return json.dumps(
        [{"id": c.id, "version": c.version, **c.values} for c in changes], default=str
    )


async def apply_many(
    session: AsyncSession, model: type[DeclarativeBase], changes: Sequence[Change]
) -> set[UUID]:
    """Apply changes of distinct records at once: each version 0 inserted unless its
    record exists, each later version applied over its predecessor. The ids applied;
    a change not applied (a duplicate or a gap) wrote nothing, and ``apply_versioned``
    tells which. One statement for the inserts and one for the updates, per shape of
    ``values``."""
    table = model.__table__
    assert isinstance(table, Table)
    groups: dict[tuple[frozenset[str], bool], list[Change]] = {}
    for change in changes:
        groups.setdefault((frozenset(change.values), change.version == 0), []).append(change)
    applied: set[UUID] = set()
    for (columns, first), group in groups.items():
        statements = _together(table, columns)
        statement = statements.insert if first else statements.advance
        result = await session.execute(statement, {"rows": _rows(group)})
        applied.update(result.scalars())
    return applied


def applied_together(
    model: type[DeclarativeBase],
    change_of: Callable[[Envelope[P]], Change],
    *,
    unless: Callable[[Envelope[P]], bool] | None = None,
) -> BatchStep[P]:
    """A listener's batch step (``transactional(..., together=...)``) for a replica whose
    handler applies ``change_of(event)`` and nothing else: the first change of each
    record in the batch, applied at once by ``apply_many``. Left to the handler, in
    order: an event ``unless`` says needs more than its change (it and the record's
    later events in the batch), a record's later events, and any change not applied."""

    async def step(events: Sequence[Envelope[P]], session: AsyncSession) -> set[int]:
        seen: set[UUID] = set()
        firsts: dict[int, Change] = {}
        for index, event in enumerate(events):
            change = change_of(event)
            if change.id not in seen and not (unless is not None and unless(event)):
                firsts[index] = change
            seen.add(change.id)
        if not firsts:
            return set()
        applied = await apply_many(session, model, list(firsts.values()))
        return {index for index, change in firsts.items() if change.id in applied}

    return step


def replicating(
    database: Database, model: type[DeclarativeBase], change_of: Callable[[Envelope[P]], Change]
) -> Transactional[P]:
    """The listener handler of a replica that an event changes and nothing more: one
    event applied by ``apply_versioned``, a fetched batch mostly at once."""

    async def handle(event: Envelope[P], session: AsyncSession) -> None:
        await apply_change(session, model, change_of(event))

    return transactional(database, handle, together=applied_together(model, change_of))
