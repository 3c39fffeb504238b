"""All of orders' SQL: the ticket replica, the units of general-admission listings, the
orders and their admissions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Integer,
    Interval,
    Row,
    Select,
    Table,
    bindparam,
    case,
    exists,
    func,
    literal,
    literal_column,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.dml import ReturningInsert

from ticketing_common.events import outbox
from ticketing_common.events.contracts import CancelReason, Envelope, OrderCreated, OrderStatus
from ticketing_common.money import to_cents
from ticketing_orders.models import (
    HOLDING_PREDICATE,
    Admission,
    Base,
    Order,
    TicketReplica,
    TicketUnit,
)

PAYABLE_STATUSES = (OrderStatus.CREATED, OrderStatus.AWAITING_PAYMENT)
HOLDING = tuple(status for status in OrderStatus if status.holds_ticket)
# The payable statuses as SQL literals (our own constants) for the purchase's statements:
# a list of values would be an "expanding" parameter, whose SQL SQLAlchemy rewrites
# at every execution.
_PAYABLE_LITERALS: list[ColumnElement[str]] = [
    literal_column(f"'{status.value}'") for status in PAYABLE_STATUSES
]
# For UPDATE … RETURNING: the WHERE is not evaluated in Python, and the returned row
# replaces any stale copy this session loaded before (a refund reads, then updates).
RETURNED_AS_WRITTEN = {"synchronize_session": False, "populate_existing": True}


def _table(model: type[Base]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


_ORDERS = _table(Order)

# The replica's columns, read with Core: the ticket is only read (to decide and to answer),
# so the ORM's identity map and loading machinery would be pure cost on the purchase path.
_TICKETS = _table(TicketReplica)
_UNITS = _table(TicketUnit)

# The parameters of the purchase's statements, shared by them. Not named like a column:
# an INSERT or UPDATE keeps those names for the values it writes.
_BUYER = bindparam("buyer", type_=_ORDERS.c.user_id.type)
_TICKET = bindparam("ticket", type_=_ORDERS.c.ticket_id.type)
_ORDER = bindparam("order", type_=_ORDERS.c.id.type)
_EXPIRES = bindparam("expires", type_=_ORDERS.c.expires_at.type)
_COOLDOWN = bindparam("cooldown", type_=Interval)
_PRICE = bindparam("price", type_=_ORDERS.c.price_cents.type)


def _open_orders(user_id: UUID | ColumnElement[UUID]) -> ColumnElement[bool]:
    """The buyer's open orders (created or awaiting payment): what the cap counts. An
    order past its ``expiresAt`` counts until its expiration cancels it: until then it
    still holds its ticket from everyone else."""
    # The table's columns, not the mapped attributes: an ORM attribute would make the
    # plain INSERT of ``insert_reserving_order`` an ORM statement again.
    return (_ORDERS.c.user_id == user_id) & _ORDERS.c.status.in_(_PAYABLE_LITERALS)


def _cooling_down(
    user_id: UUID | ColumnElement[UUID],
    ticket_id: UUID | ColumnElement[UUID],
    cooldown: timedelta | ColumnElement[timedelta],
) -> ColumnElement[bool]:
    """The buyer's orders of this ticket cancelled (by them or by their expiry) less than
    ``cooldown`` ago."""
    return (
        (_ORDERS.c.user_id == user_id)
        & (_ORDERS.c.ticket_id == ticket_id)
        & (_ORDERS.c.status == OrderStatus.CANCELLED)
        & (_ORDERS.c.cancelled_at > func.now() - cooldown)
    )


@dataclass(frozen=True)
class Standing:
    """What the fair-hold rules need of one buyer and one ticket, as committed now."""

    open_orders: int
    earliest_expiry: datetime | None
    """When the first of the buyer's open orders expires."""
    last_cancelled: datetime | None
    """The buyer's last order of the ticket cancelled within the cool-down, if any."""
    now: datetime


# A buyer's standing on a ticket, as three columns: their open orders, when the first
# of those expires, their last order of the ticket cancelled within the cool-down.
_STANDING_COLUMNS = (
    select(func.count()).where(_open_orders(_BUYER)).scalar_subquery(),
    select(func.min(_ORDERS.c.expires_at)).where(_open_orders(_BUYER)).scalar_subquery(),
    select(func.max(_ORDERS.c.cancelled_at))
    .where(_cooling_down(_BUYER, _TICKET, _COOLDOWN))
    .scalar_subquery(),
)
STANDING = select(*_STANDING_COLUMNS, func.now())


async def standing_of_buyer(
    session: AsyncSession, *, user_id: UUID, ticket_id: UUID, cooldown: timedelta
) -> Standing:
    """The buyer's open orders and cool-down on the ticket, in one statement (one
    snapshot, taken after the buyer's lock: see ``ticket_to_order``)."""
    row = (
        await session.execute(
            STANDING, {"buyer": user_id, "ticket": ticket_id, "cooldown": cooldown}
        )
    ).one()
    return Standing(open_orders=row[0], earliest_expiry=row[1], last_cancelled=row[2], now=row[3])


# Whether another order holds the seat (the partial unique index's own predicate, so
# the probe is that index), and only then the buyer's standing: a CASE runs its
# subqueries only for the branch taken, so a free seat's read costs nothing more.
_HELD = exists().where(_ORDERS.c.ticket_id == _TICKETS.c.id, HOLDING_PREDICATE)
_STANDING_IF_HELD = [case((_HELD, column), else_=None) for column in _STANDING_COLUMNS]

# Built once: a statement object memoizes its compile-cache key, so executing it again
# skips both building it and walking it for that key.
TICKET_TO_ORDER = (
    select(
        *_TICKETS.c,
        func.pg_advisory_xact_lock(func.hashtextextended(bindparam("lock"), 0)),
        _HELD,
        *_STANDING_IF_HELD,
        func.now(),
    )
    .where(_TICKETS.c.id == _TICKET)
    .with_for_update(read=True, of=_TICKETS)
)

# At a glance, whether the order would be refused for want of stock: the seat held
# by another order, or fewer free units of a general-admission listing than asked
# (counted up to that many, in the free units' index). Then the buyer's standing.
_UNITS_ASKED = bindparam("units", type_=Integer)
_ENOUGH_FREE = (
    select(func.count())
    .select_from(
        select(_UNITS.c.unit)
        .where(_UNITS.c.ticket_id == _TICKETS.c.id, _UNITS.c.order_id.is_(None))
        .limit(_UNITS_ASKED)
        .subquery()
    )
    .scalar_subquery()
    >= _UNITS_ASKED
)
_TAKEN = case((_TICKETS.c.general_admission, ~_ENOUGH_FREE), else_=_HELD)
GLANCE_AT_TICKET = select(
    *_TICKETS.c,
    _TAKEN,
    *[case((_TAKEN, column), else_=None) for column in _STANDING_COLUMNS],
    func.now(),
).where(_TICKETS.c.id == _TICKET)


@dataclass(frozen=True)
class TicketToOrder:
    """What ``ticket_to_order`` and ``glance_at_ticket`` answer."""

    ticket: TicketReplica
    taken_against: Standing | None
    """When the stock asked for was taken as the read began (the seat held by another
    order, or too few free units of a listing; ``ticket_to_order`` looks at seats
    only): the buyer's standing then, for the refusal to say whether the buyer's own
    rules refuse them first."""
    now: datetime
    """The read's ``now()``: in ``ticket_to_order``, the start of the order's
    transaction, which PostgreSQL's ``now()`` is in every statement of it, so the new
    order's expiry is counted from it in Python (``service._order_to_create``)."""


def _ticket_to_order(row: Row[*tuple[Any, ...]] | None) -> TicketToOrder | None:
    """A row of ``TICKET_TO_ORDER`` or ``GLANCE_AT_TICKET``: the ticket's columns first;
    last, whether the stock was taken, the buyer's standing when it was, and ``now()``
    (the lock's column between them in ``TICKET_TO_ORDER`` is not read). A listing's
    units are never "held" (the holding predicate leaves general-admission orders
    out), so ``ticket_to_order`` finds only seats taken."""
    if row is None:
        return None
    ticket = TicketReplica(**{column.key: row[index] for index, column in enumerate(_TICKETS.c)})
    taken = row[-5]
    open_orders, earliest_expiry, last_cancelled, now = row[-4:]
    standing = (
        Standing(
            open_orders=open_orders,
            earliest_expiry=earliest_expiry,
            last_cancelled=last_cancelled,
            now=now,
        )
        if taken
        else None
    )
    return TicketToOrder(ticket, standing, now)


@asynccontextmanager
async def _autocommit(session: AsyncSession) -> AsyncIterator[AsyncConnection]:
    """A connection of the session's engine outside the session's transaction, each
    statement on it committed by itself: no BEGIN and ROLLBACK round trips. Returned
    to the pool when done, before the session takes one, so a request never holds two."""
    engine = session.bind
    if not isinstance(engine, AsyncEngine):
        raise TypeError(f"a session bound to an engine, not {engine!r}")
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        yield connection


async def glance_at_ticket(
    session: AsyncSession, ticket_id: UUID, user_id: UUID, quantity: int, cooldown: timedelta
) -> TicketToOrder | None:
    """The ticket, and whether the ``quantity`` asked for was taken: one statement
    outside any transaction, taking no lock. Most requests of a sell-out ask for stock
    that is gone, and are refused from this alone; what it finds available is decided
    again, under the locks, by ``ticket_to_order`` and the insert (docs/concurrency.md,
    rule 1).

    A refusal from it is right at the moment its statement ran: the seat was held,
    or fewer units were free, in committed data then. It writes nothing, so it needs
    neither the share lock (rule 17 guards a new order against a withdrawal) nor the
    buyer's lock (rule 14 guards the cap of orders being written): a read in a
    transaction holding them would also assign a transaction id and mark the ticket's
    row for its share lock, a multixact when many buyers share it, for a request that
    writes nothing. Units another buyer's uncommitted claim holds still look free
    here: that buyer may roll back, and the claim decides.
    """
    async with _autocommit(session) as connection:
        row = (
            await connection.execute(
                GLANCE_AT_TICKET,
                {"ticket": ticket_id, "buyer": user_id, "cooldown": cooldown, "units": quantity},
            )
        ).first()
    return _ticket_to_order(row)


async def ticket_to_order(
    session: AsyncSession, ticket_id: UUID, user_id: UUID, cooldown: timedelta
) -> TicketToOrder | None:
    """The ticket, share-locked until the new order's transaction ends, with the buyer's
    lock taken: one statement for both. Detached from the session: read, never written.

    Race (rule 17): a ticket:withdrawn applied between this read and the order's
    commit would look for orders to cancel before this one exists, and the order
    would hold a withdrawn ticket. The share lock makes the withdrawal's update of
    the replica wait for the order to commit (it then cancels it), or this read
    wait for the withdrawal to commit (it then sees it withdrawn). Concurrent
    buyers' share locks do not block one another.

    Race (rule 14): a buyer's concurrent orders (50 requests at once) would each
    count the same open orders and all pass the cap. A transaction-scoped advisory
    lock on the buyer makes them count one after another: the next one waits here
    until the previous commits or rolls back, and its count, in a later statement
    (a new snapshot, read committed), then sees that order. A transaction takes one
    buyer's lock only, and a withdrawal never takes one, so neither lock can close a
    cycle. The key is a 64-bit hash of the buyer: a collision only makes two buyers
    wait for each other. No ticket, no lock: the request ends with 404.

    A seat another order came to hold since ``glance_at_ticket`` looked (committed
    before this statement began) is refused from this one read: no insert, no second
    statement for the standing. That standing is of this statement's snapshot,
    taken before the buyer's lock, so a buyer racing their own orders may be told
    409 where a later look would say 429; either way nothing is written. A seat
    whose holder commits after the snapshot is still decided by the insert.

    Its last column, ``now()``, is the transaction's start, the same in every later
    statement of it: the new order's expiry is counted from it in Python
    (``TicketToOrder.now``), so that order:created can be built before the insert,
    which writes it with the order in one statement (``insert_reserving_order``).
    """
    row = (
        await session.execute(
            TICKET_TO_ORDER,
            {
                "ticket": ticket_id,
                "lock": f"orders-of-buyer:{user_id}",
                "buyer": user_id,
                "cooldown": cooldown,
            },
        )
    ).first()
    return _ticket_to_order(row)


def _reserving_insert(*, cooldown: bool) -> ReturningInsert[Any]:
    """The INSERT of ``insert_reserving_order``'s statement (with the cool-down condition
    or without it, when the cool-down is off): every value is a parameter."""
    conditions = [
        select(func.count()).where(_open_orders(_BUYER)).scalar_subquery()
        < bindparam("max_open", type_=Integer)
    ]
    if cooldown:
        conditions.append(~exists().where(_cooling_down(_BUYER, _TICKET, _COOLDOWN)))
    row = select(
        _ORDER,
        _BUYER,
        _TICKET,
        _PRICE,
        literal(OrderStatus.CREATED, _ORDERS.c.status.type),
        _EXPIRES,
        literal(0, _ORDERS.c.version.type),
    ).where(*conditions)
    columns = ["id", "user_id", "ticket_id", "price_cents", "status", "expires_at", "version"]
    return (
        insert(_ORDERS)
        .from_select(columns, row)
        .on_conflict_do_nothing(index_elements=["ticket_id"], index_where=HOLDING_PREDICATE)
        .returning(*_ORDERS.c)
    )


def _announcing(writing: ReturningInsert[Any]) -> Select[Any]:
    """``writing`` (an INSERT of an order, returning every column) as one statement with
    the outbox row of its order:created: ``WITH reserved AS (<writing>), <the outbox
    insert> SELECT <the order's columns> FROM reserved``. The event is written exactly
    when the order is, in the same round trip: an insert that writes no order returns
    no row and records no event. Its parameters: ``_announced``."""
    reserved = writing.cte("reserved")
    return select(*reserved.c).add_cte(outbox.recorded_with(reserved))


def _announced(created: OrderCreated) -> dict[str, object]:
    """The parameters of an ``_announcing`` statement that writes the order ``created``
    announces: the order's id, buyer, ticket, price and expiry, taken from the event so
    that the row and the event agree by construction; then the event's own outbox row
    (``outbox.parameters_of``)."""
    return {
        "order": created.id,
        "buyer": created.user_id,
        "ticket": created.ticket.id,
        "price": to_cents(created.ticket.price),
        "expires": created.expires_at,
        **outbox.parameters_of(Envelope.of(created)),
    }


RESERVE_SEAT = _announcing(_reserving_insert(cooldown=True))
RESERVE_SEAT_WITHOUT_COOLDOWN = _announcing(_reserving_insert(cooldown=False))


async def insert_reserving_order(
    session: AsyncSession,
    *,
    created: OrderCreated,
    ticket: TicketReplica,
    max_open: int,
    cooldown: timedelta,
) -> Order | None:
    """The new order ``created`` announces, holding the seat ``ticket``, with that
    order:created recorded in the outbox; None, and no event, when another order holds
    the seat, or the buyer may not order now (at the cap of open orders, or cooling
    down after an order of this ticket was cancelled: ``standing_of_buyer`` tells
    which). The order is detached from the session: nothing later in the request
    changes it.

    One statement decides and writes both the order and its event (``_announcing``),
    so the purchase of a seat is two statements (this and the ticket read). Still
    correct:
    - Race (rule 1): any number of buyers may find the ticket free at the same
      moment. The partial unique index on ``orders(ticket_id) WHERE status IN
      (holding) AND NOT general_admission`` decides between them: ``ON CONFLICT DO
      NOTHING`` with that index as the conflict target makes every insert but the
      first wait for it to commit and then insert nothing, so exactly one succeeds
      and no transaction is left aborted by an IntegrityError. The outbox row is
      written from the insert's RETURNING, so a buyer who lost wrote no event.
    - Race (rule 14): the cap and the cool-down are conditions of this INSERT's
      SELECT, evaluated in its snapshot (every part of one statement shares it),
      which is taken after ``ticket_to_order`` got the buyer's lock: it sees every
      order of the buyer committed before, and no other order of the buyer can
      commit until this transaction ends.

    The expiry is ``created.expires_at``, counted by the caller from the ticket
    read's ``now()``: the database's clock (shared by every replica) at this
    transaction's start, what ``now()`` in this statement would be too. Passing it,
    rather than adding the window to ``now()`` in SQL, makes the row's expiry the
    event's by construction: an interval of a day or more added in SQL is calendar
    arithmetic in the session's time zone, which a Python ``timedelta`` is not.
    """
    statement = RESERVE_SEAT if cooldown else RESERVE_SEAT_WITHOUT_COOLDOWN
    row = (
        await session.execute(
            statement, {**_announced(created), "max_open": max_open, "cooldown": cooldown}
        )
    ).first()
    return None if row is None else _new_order(row, ticket)


def _new_order(row: Row[Any], ticket: TicketReplica) -> Order:
    """The order just inserted (``row``: every column, as returned), with its ticket,
    detached from the session: nothing later in the request changes it."""
    order = Order(**{column.key: row[index] for index, column in enumerate(_ORDERS.c)})
    set_committed_value(order, "ticket", ticket)
    set_committed_value(order, "admission", None)  # issued when it is paid
    return order


async def add_units(session: AsyncSession, ticket_id: UUID, quantity: int) -> None:
    """Give a general-admission listing its ``quantity`` free units, once.

    Idempotent: a redelivered ticket:created (or a later version of the listing)
    inserts nothing. The NOT EXISTS makes that one index probe instead of
    ``quantity`` conflicting inserts; the units of a listing are inserted by one
    statement, so either all of them exist or none.
    """
    units = select(literal(ticket_id), func.generate_series(1, quantity)).where(
        ~select(TicketUnit.unit).where(TicketUnit.ticket_id == ticket_id).exists()
    )
    await session.execute(
        insert(TicketUnit)
        .from_select([TicketUnit.ticket_id, TicketUnit.unit], units)
        .on_conflict_do_nothing(index_elements=[TicketUnit.ticket_id, TicketUnit.unit])
    )


_FREE_UNITS = (
    select(_UNITS.c.ticket_id, _UNITS.c.unit)
    .where(_UNITS.c.ticket_id == _TICKET, _UNITS.c.order_id.is_(None))
    # In the free units' index order: an index scan from the first free unit, never
    # a scan of other listings' units.
    .order_by(_UNITS.c.unit)
    .limit(bindparam("units", type_=Integer))
    .with_for_update(skip_locked=True)
)
CLAIM_UNITS = (
    update(_UNITS)
    .where(tuple_(_UNITS.c.ticket_id, _UNITS.c.unit).in_(_FREE_UNITS))
    .values(order_id=_ORDER)
    .returning(_UNITS.c.unit)
)


async def claim_units(
    session: AsyncSession, *, ticket_id: UUID, order_id: UUID, quantity: int
) -> int:
    """Give up to ``quantity`` free units of the listing to ``order_id``; how many it got.

    Race: any number of buyers claim units of one listing at once. Each locks the
    free rows it picks (``FOR UPDATE SKIP LOCKED``), skipping rows another buyer
    has locked instead of waiting for them, and re-checks ``order_id IS NULL`` on a
    row committed since its snapshot; so no unit is given twice, and buyers never
    wait for one another (no lock on the listing). A buyer who got fewer than
    asked rolls back, which frees the rows it claimed.
    """
    claimed = await session.execute(
        CLAIM_UNITS, {"ticket": ticket_id, "order": order_id, "units": quantity}
    )
    return len(claimed.all())


INSERT_UNIT_ORDER = _announcing(
    insert(_ORDERS)
    .values(
        id=_ORDER,
        user_id=_BUYER,
        ticket_id=_TICKET,
        price_cents=_PRICE,
        general_admission=True,
        quantity=bindparam("units", type_=Integer),
        status=OrderStatus.CREATED,
        expires_at=_EXPIRES,
        version=0,
    )
    .returning(*_ORDERS.c)
)


async def insert_unit_order(
    session: AsyncSession, *, created: OrderCreated, ticket: TicketReplica
) -> Order:
    """The new order ``created`` announces, of units of a general-admission listing it
    already claimed under the event's order id (``claim_units``), with that
    order:created recorded in the outbox: one statement (``_announcing``), whose
    expiry is the event's, as in ``insert_reserving_order``."""
    row = (
        await session.execute(INSERT_UNIT_ORDER, {**_announced(created), "units": created.quantity})
    ).one()
    return _new_order(row, ticket)


async def release_units(session: AsyncSession, order_ids: Sequence[UUID]) -> None:
    """Free the units these (just cancelled) orders held: exactly theirs.

    Called in the transaction whose conditional UPDATE cancelled them, which only
    one transition of an order ever wins, so units are released once.
    """
    await session.execute(
        update(TicketUnit)
        .where(TicketUnit.order_id.in_(order_ids))
        .values(order_id=None)
        .execution_options(synchronize_session=False)
    )


async def order_of_user(session: AsyncSession, order_id: UUID, user_id: UUID) -> Order | None:
    """The order with its ticket and admission, as committed now (read again even when
    this session changed it with an UPDATE)."""
    return await session.scalar(
        select(Order)
        .options(joinedload(Order.ticket), joinedload(Order.admission))
        .where(Order.id == order_id, Order.user_id == user_id)
        .execution_options(populate_existing=True)
    )


async def orders_of_user(session: AsyncSession, user_id: UUID) -> Sequence[Order]:
    """Newest first, each with its ticket and admission."""
    return (
        await session.scalars(
            select(Order)
            .options(joinedload(Order.ticket), joinedload(Order.admission))
            .where(Order.user_id == user_id)
            .order_by(Order.created_at.desc(), Order.id)
        )
    ).all()


async def order_with_admission(session: AsyncSession, order_id: UUID) -> Order | None:
    """Any buyer's order with its ticket and admission, as committed now."""
    return await session.scalar(
        select(Order)
        .options(joinedload(Order.ticket), joinedload(Order.admission))
        .where(Order.id == order_id)
        .execution_options(populate_existing=True)
    )


async def lock_order_of_user(session: AsyncSession, order_id: UUID, user_id: UUID) -> Order | None:
    """The buyer's order, row-locked until the transaction ends (a refund decides under
    it; a completion, a cancel or a withdrawal of the order waits for it)."""
    return await session.scalar(
        select(Order)
        .where(Order.id == order_id, Order.user_id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def cancel_order(
    session: AsyncSession,
    order_id: UUID,
    user_id: UUID | None = None,
    *,
    reason: CancelReason,
) -> Order | None:
    """Cancel the order (the user's, when given) unless it is cancelled or complete.

    The order, or None when nothing changed. Race: two cancels of one order (a
    double click, or the buyer's cancel meeting the expiration). The conditional
    UPDATE makes the second wait on the row lock, re-check its WHERE against the
    committed row and match nothing, so only one of them bumps the version and
    publishes order:cancelled. The same lock orders a cancel against a completion.
    """
    conditions = [
        Order.id == order_id,
        Order.status.not_in([OrderStatus.CANCELLED, OrderStatus.COMPLETE]),
    ]
    if user_id is not None:
        conditions.append(Order.user_id == user_id)
    statement = (
        update(Order)
        .where(*conditions)
        .values(**_cancelled(reason))
        .returning(Order)
        .execution_options(**RETURNED_AS_WRITTEN)
    )
    return (await session.scalars(statement)).one_or_none()


def _cancelled(reason: CancelReason) -> dict[str, object]:
    """What cancelling an order sets: a new version, the time and the reason."""
    return {
        "status": OrderStatus.CANCELLED,
        "version": Order.version + 1,
        "cancelled_at": func.now(),
        "cancel_reason": reason,
    }


async def cancel_complete_order(
    session: AsyncSession, order_id: UUID, *, reason: CancelReason
) -> Order | None:
    """Cancel a complete order (a refund); None when it is not complete."""
    statement = (
        update(Order)
        .where(Order.id == order_id, Order.status == OrderStatus.COMPLETE)
        .values(**_cancelled(reason))
        .returning(Order)
        .execution_options(**RETURNED_AS_WRITTEN)
    )
    return (await session.scalars(statement)).one_or_none()


async def cancel_orders_holding(
    session: AsyncSession, ticket_id: UUID, *, reason: CancelReason
) -> Sequence[Order]:
    """Cancel every order that holds the ticket (created, awaiting payment or complete).

    Race: an order being completed or refunded holds its row lock; this waits for it
    and re-checks the status against the committed row, so a refunded order is left
    alone and a just-completed one is cancelled.
    """
    statement = (
        update(Order)
        .where(Order.ticket_id == ticket_id, Order.status.in_(HOLDING))
        .values(**_cancelled(reason))
        .returning(Order)
        .execution_options(**RETURNED_AS_WRITTEN)
    )
    return (await session.scalars(statement)).all()


async def issue_admission(session: AsyncSession, order: Order) -> None:
    """The complete order's admission (once: a second completion cannot happen, and a
    redelivery would find it)."""
    await session.execute(
        insert(Admission)
        .values(order_id=order.id, ticket_id=order.ticket_id)
        .on_conflict_do_nothing(index_elements=[Admission.order_id])
    )


async def admission_of_order(session: AsyncSession, order_id: UUID) -> Admission | None:
    return await session.scalar(
        select(Admission)
        .where(Admission.order_id == order_id)
        .execution_options(populate_existing=True)
    )


async def void_unused_admission(
    session: AsyncSession, order_id: UUID, *, issued_after: timedelta
) -> Admission | None:
    """Void the order's admission if it was never checked in and was issued less than
    ``issued_after`` ago (a refund); None when it was not voided.

    Race: a check-in of the same admission updates the same row. Whichever locks it
    first commits its change; the other waits, re-checks its WHERE against the
    committed row (checked in, or voided) and matches nothing. So a refund and a
    scan never both succeed.
    """
    statement = (
        update(Admission)
        .where(
            Admission.order_id == order_id,
            Admission.checked_in_at.is_(None),
            Admission.voided_at.is_(None),
            Admission.issued_at > func.now() - issued_after,
        )
        .values(voided_at=func.now())
        .returning(Admission)
        .execution_options(**RETURNED_AS_WRITTEN)
    )
    return (await session.scalars(statement)).one_or_none()


async def void_admissions(session: AsyncSession, order_ids: Sequence[UUID]) -> None:
    """Void the admissions of these (cancelled) orders, checked in or not."""
    await session.execute(
        update(Admission)
        .where(Admission.order_id.in_(order_ids), Admission.voided_at.is_(None))
        .values(voided_at=func.now())
        .execution_options(synchronize_session=False)
    )


async def check_in(
    session: AsyncSession, *, order_id: UUID, ticket_id: UUID, seller_id: UUID, email: str
) -> Admission | None:
    """Check the admission in, if it admits and ``seller_id`` sold its ticket; the
    admission, or None when nothing changed.

    One conditional UPDATE decides. Race: of any number of concurrent scans of one
    code, the first to lock the admission row checks it in; every other waits on
    that lock, re-checks ``checked_in_at IS NULL`` against the committed row and
    matches nothing. A refund or a withdrawal voids the same row under the same
    lock, so a voided admission is never checked in and a checked-in one never
    refunded.
    """
    statement = (
        update(Admission)
        .where(
            Admission.order_id == order_id,
            Admission.ticket_id == ticket_id,
            Admission.checked_in_at.is_(None),
            Admission.voided_at.is_(None),
            Order.id == Admission.order_id,
            Order.status == OrderStatus.COMPLETE,
            TicketReplica.id == Order.ticket_id,
            TicketReplica.seller_id == seller_id,
        )
        .values(checked_in_at=func.now(), checked_in_by=seller_id, checked_in_by_email=email)
        .returning(Admission)
        .execution_options(**RETURNED_AS_WRITTEN)
    )
    return (await session.scalars(statement)).one_or_none()


async def complete_order(session: AsyncSession, order_id: UUID) -> Order | None:
    """Mark a payable order complete; the order, or None when it is not payable.

    A cancelled order stays cancelled (payments refunds a charge that raced the
    cancel). The version is not bumped: it counts the changes orders publishes,
    and completion is not published, so the replicas of tickets and payments see
    no gap. A complete order is never cancelled, so no later version follows.
    """
    statement = (
        update(Order)
        .where(Order.id == order_id, Order.status.in_(PAYABLE_STATUSES))
        .values(status=OrderStatus.COMPLETE)
        .returning(Order)
        .execution_options(**RETURNED_AS_WRITTEN)
    )
    return (await session.scalars(statement)).one_or_none()


async def order_by_id(session: AsyncSession, order_id: UUID) -> Order | None:
    return await session.get(Order, order_id)


async def orders_by_ids(session: AsyncSession, order_ids: Sequence[UUID]) -> Sequence[Order]:
    """The orders that exist among ``order_ids``, oldest first."""
    return (
        await session.scalars(
            select(Order).where(Order.id.in_(order_ids)).order_by(Order.created_at, Order.id)
        )
    ).all()


async def order_ids_of_tickets(session: AsyncSession, ticket_ids: Sequence[UUID]) -> list[UUID]:
    """Every order ever made for these tickets, oldest first."""
    return list(
        await session.scalars(
            select(Order.id)
            .where(Order.ticket_id.in_(ticket_ids))
            .order_by(Order.created_at, Order.id)
        )
    )


async def all_order_ids(session: AsyncSession) -> list[UUID]:
    """Every order, oldest first."""
    return list(await session.scalars(select(Order.id).order_by(Order.created_at, Order.id)))
