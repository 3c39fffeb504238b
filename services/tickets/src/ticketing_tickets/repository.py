"""All of tickets' SQL: tickets (listed, edited, reserved, sold, withdrawn), the units of
general-admission listings as counted from order events, and the order references of the
order listeners."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple
from uuid import UUID

from sqlalchemy import ColumnElement, Table, bindparam, exists, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing_tickets.models import FOR_SALE, OrderRef, Ticket

_tickets = Ticket.__table__
_order_refs = OrderRef.__table__
assert isinstance(_tickets, Table)
assert isinstance(_order_refs, Table)


class PublishedTicket(NamedTuple):
    """What ticket:updated says of a ticket, as an order event's write left it. Read
    with Core, not as an ORM ``Ticket``: an order event needs no more than this."""

    id: UUID
    version: int
    title: str
    price_cents: int
    user_id: UUID
    order_id: UUID | None
    general_admission: bool
    quantity: int


_PUBLISHED = [_tickets.c[name] for name in PublishedTicket._fields]


async def insert_ticket(
    session: AsyncSession,
    *,
    title: str,
    price_cents: int,
    user_id: UUID,
    quantity: int | None = None,
) -> Ticket:
    """A seat, or with ``quantity`` a general-admission listing of that many units."""
    ticket = Ticket(
        title=title,
        price_cents=price_cents,
        user_id=user_id,
        version=0,
        general_admission=quantity is not None,
        quantity=1 if quantity is None else quantity,
    )
    session.add(ticket)
    await session.flush()
    await session.refresh(ticket, ["created_at"])
    return ticket


async def ticket_by_id(session: AsyncSession, ticket_id: UUID) -> Ticket | None:
    return await session.get(Ticket, ticket_id, populate_existing=True)


async def tickets_for_sale(session: AsyncSession, *, limit: int, offset: int) -> Sequence[Ticket]:
    """Tickets nobody holds (a general-admission listing: with a unit available) and the
    seller has not withdrawn, newest first (the id orders tickets created in one instant)."""
    return (
        await session.scalars(
            select(Ticket)
            .where(FOR_SALE)
            .order_by(Ticket.created_at.desc(), Ticket.id.desc())
            .limit(limit)
            .offset(offset)
        )
    ).all()


async def tickets_of_seller(session: AsyncSession, seller_id: UUID) -> Sequence[Ticket]:
    """Every listing of one seller, whatever its status, newest first."""
    return (
        await session.scalars(
            select(Ticket)
            .where(Ticket.user_id == seller_id)
            .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        )
    ).all()


async def update_unreserved(
    session: AsyncSession, ticket_id: UUID, *, seller_id: UUID, title: str, price_cents: int
) -> Ticket | None:
    """Edit a ticket of this seller that no order holds and that is not withdrawn; None
    when that is not the case. No order ever holds a general-admission listing as a
    whole (its order_id stays NULL), so it is editable while units are held or sold.

    One conditional UPDATE, not a read and then a write: the order:created
    handler may reserve the ticket at any moment, and a check made before the
    write could pass just before it commits, letting an edit change the price of
    a ticket already being bought. The row lock of the UPDATE serialises the two.
    """
    return await _changed(
        session,
        [
            Ticket.id == ticket_id,
            Ticket.user_id == seller_id,
            Ticket.order_id.is_(None),
            Ticket.withdrawn_at.is_(None),
        ],
        title=title,
        price_cents=price_cents,
        version=Ticket.version + 1,
    )


# The order listeners' writes run once per event, so each is one statement built once
# (building and compiling a statement costs more than running it) and run with Core.

_ticket_id = bindparam("ticket", type_=_tickets.c.id.type)
_order_id = bindparam("order", type_=_tickets.c.order_id.type)
_FREE = (_tickets.c.id == _ticket_id) & _tickets.c.order_id.is_(None)
_FREE &= _tickets.c.withdrawn_at.is_(None)
_HELD = (_tickets.c.id == _ticket_id) & (_tickets.c.order_id == _order_id)

RESERVE = (
    update(_tickets)
    .where(_FREE)
    .values(order_id=_order_id, version=_tickets.c.version + 1)
    .returning(*_PUBLISHED)
)

# A new order's ref (version 0, as ``apply_versioned`` inserts it) and, only when the
# ref was new, the reservation: one round trip for an order:created that is neither a
# repeat nor overtaken by its cancel. The UPDATE runs on the ref the CTE returned, so a
# ref that existed (a repeat, or the order's cancel committed first) reserves nothing
# here, and the caller decides with fresh statements, as for any other outcome.
_NEW_REF = (
    insert(_order_refs)
    .values(id=_order_id, version=0, ticket_id=_ticket_id)
    .on_conflict_do_nothing(index_elements=[_order_refs.c.id])
    .returning(_order_refs.c.id)
    .cte("new_ref")
)
RESERVE_FOR_NEW_ORDER = (
    update(_tickets)
    .where(_FREE, exists(select(_NEW_REF.c.id)))
    .values(order_id=_order_id, version=_tickets.c.version + 1)
    .returning(*_PUBLISHED)
)

RELEASE = (
    update(_tickets)
    .where(_HELD)
    .values(order_id=None, sold_at=None, version=_tickets.c.version + 1)
    .returning(*_PUBLISHED)
)

MARK_SOLD = (
    update(_tickets)
    .where(_HELD, _tickets.c.sold_at.is_(None))
    .values(sold_at=func.now())
    .returning(_tickets.c.id)
)


async def _published(
    session: AsyncSession, statement: Any, ticket_id: UUID, order_id: UUID
) -> PublishedTicket | None:
    connection = await session.connection()
    row = (await connection.execute(statement, {"ticket": ticket_id, "order": order_id})).first()
    return None if row is None else PublishedTicket._make(row)


async def reserve(session: AsyncSession, ticket_id: UUID, order_id: UUID) -> PublishedTicket | None:
    """Lock a free ticket for an order; None when it is unknown, held or withdrawn.

    Conditional on ``order_id IS NULL AND withdrawn_at IS NULL`` so a concurrent
    edit, withdrawal or another order's event cannot interleave between a check and
    the write.
    """
    return await _published(session, RESERVE, ticket_id, order_id)


async def reserve_for_new_order(
    session: AsyncSession, ticket_id: UUID, order_id: UUID
) -> PublishedTicket | None:
    """Insert a new order's ref (version 0) and, if the ref was new, lock the free ticket
    for it, in one statement; None when either did not happen (the ref existed, or the
    ticket is unknown, held or withdrawn: the caller looks at which).

    The reservation is the same conditional UPDATE as ``reserve``, so it decides races
    with edits, withdrawals and other orders the same way; and as with
    ``apply_versioned``, a concurrent insert of the same ref (the order's cancel, or a
    second delivery) makes this one wait for it and then insert nothing.
    """
    return await _published(session, RESERVE_FOR_NEW_ORDER, ticket_id, order_id)


async def release(session: AsyncSession, ticket_id: UUID, order_id: UUID) -> PublishedTicket | None:
    """Free a ticket held by this order, sold or not; None when this order does not hold it.

    A sold ticket is freed by its order's refund: it is for sale again.
    """
    return await _published(session, RELEASE, ticket_id, order_id)


async def mark_sold(session: AsyncSession, ticket_id: UUID, order_id: UUID) -> bool:
    """Mark sold a ticket this order holds and that is not sold yet; False otherwise.

    The version is not bumped: a sale is a fact about the holding order, which
    orders already knows, not a change that replicas of the ticket apply.
    """
    connection = await session.connection()
    sold = await connection.execute(MARK_SOLD, {"ticket": ticket_id, "order": order_id})
    return sold.first() is not None


async def withdraw(session: AsyncSession, ticket_id: UUID, seller_id: UUID) -> Ticket | None:
    """Withdraw a ticket of this seller that no order holds (so neither reserved nor
    sold; for a general-admission listing: no unit held or sold) and that is not
    withdrawn yet; None when that is not the case.

    One conditional UPDATE, like ``reserve``: whichever of a withdrawal and an
    order:created takes the row lock first wins, and the other re-reads the
    committed row and matches nothing. A ticket is never both withdrawn and held.
    """
    return await _changed(
        session,
        [
            Ticket.id == ticket_id,
            Ticket.user_id == seller_id,
            Ticket.order_id.is_(None),
            Ticket.sold_at.is_(None),
            Ticket.units_held == 0,
            Ticket.units_sold == 0,
            Ticket.withdrawn_at.is_(None),
        ],
        withdrawn_at=func.now(),
        version=Ticket.version + 1,
    )


IS_GENERAL_ADMISSION = select(_tickets.c.general_admission).where(_tickets.c.id == _ticket_id)


async def is_general_admission(session: AsyncSession, ticket_id: UUID) -> bool:
    """Whether a ticket is a general-admission listing (False when unknown). Fixed when
    listed, so read without a lock."""
    connection = await session.connection()
    return bool(await connection.scalar(IS_GENERAL_ADMISSION, {"ticket": ticket_id}))


class LockedListing(NamedTuple):
    id: UUID
    withdrawn: bool


LOCK_LISTING = (
    select(_tickets.c.id, _tickets.c.withdrawn_at.is_not(None))
    .where(_tickets.c.id == _ticket_id)
    .with_for_update()
)


async def lock_listing(session: AsyncSession, ticket_id: UUID) -> LockedListing:
    """A general-admission listing, locked until the transaction ends.

    Every order event of the listing takes this lock before it reads its order's ref,
    so events of one order, which arrive through different consumers, are applied one
    after another and each sees the share the previous one left.
    """
    connection = await session.connection()
    return LockedListing._make(
        (await connection.execute(LOCK_LISTING, {"ticket": ticket_id})).one()
    )


class OrderShare(NamedTuple):
    """An order's share of its listing's counts (its ref)."""

    ticket_id: UUID
    units_held: int
    units_sold: int
    sold_cents: int


ORDER_SHARE = select(*(_order_refs.c[name] for name in OrderShare._fields)).where(
    _order_refs.c.id == _order_id
)


async def order_ref(session: AsyncSession, order_id: UUID) -> OrderShare | None:
    connection = await session.connection()
    row = (await connection.execute(ORDER_SHARE, {"order": order_id})).first()
    return None if row is None else OrderShare._make(row)


_held = bindparam("held", type_=_tickets.c.units_held.type)
_sold = bindparam("sold", type_=_tickets.c.units_sold.type)
_cents = bindparam("cents", type_=_tickets.c.sold_cents.type)


def _moved(table: Table) -> dict[str, Any]:
    return {
        "units_held": table.c.units_held + _held,
        "units_sold": table.c.units_sold + _sold,
        "sold_cents": table.c.sold_cents + _cents,
    }


# Both rows in one statement (the order's share in a CTE, which always runs).
MOVE_UNITS = (
    update(_tickets)
    .where(_tickets.c.id == _ticket_id)
    .values(_moved(_tickets))
    .add_cte(
        update(_order_refs)
        .where(_order_refs.c.id == _order_id)
        .values(_moved(_order_refs))
        .cte("share_moved")
    )
)


async def move_units(
    session: AsyncSession,
    *,
    order_id: UUID,
    ticket_id: UUID,
    held: int = 0,
    sold: int = 0,
    sold_cents: int = 0,
) -> None:
    """Add to an order's share of its listing's counts, and the same to the listing's:
    the listing's counts stay the sum of its orders' shares. Not a version of the
    listing (orders' units are the truth of who holds what; here they are only counted)."""
    connection = await session.connection()
    await connection.execute(
        MOVE_UNITS,
        {"order": order_id, "ticket": ticket_id, "held": held, "sold": sold, "cents": sold_cents},
    )


ORDER_REF_VERSION = select(_order_refs.c.version).where(_order_refs.c.id == _order_id)


async def order_ref_version(session: AsyncSession, order_id: UUID) -> int:
    """The last version seen of an order that has a ref (-1 when it has none)."""
    connection = await session.connection()
    version = await connection.scalar(ORDER_REF_VERSION, {"order": order_id})
    return -1 if version is None else int(version)


async def _changed(
    session: AsyncSession, conditions: list[ColumnElement[bool]], **values: Any
) -> Ticket | None:
    """One conditional ``UPDATE`` of a ticket: the row as changed, or None when no row
    met ``conditions``. Written as one statement so the row lock, not a check made
    before the write, decides between concurrent changes."""
    statement = (
        update(Ticket)
        .where(*conditions)
        .values(**values)
        .returning(Ticket)
        .execution_options(populate_existing=True)
    )
    return (await session.scalars(statement)).one_or_none()
