"""A new order and its order:created are written by one statement (docs/events.md, the
outbox): the event's row exists exactly when the order's does, carries the stored
order's own values, and an insert that is refused writes none.

Each purchase here runs in a transaction of the test's own, and the outbox is read in
that transaction before it ends: the served app's relay cannot publish (and delete) a
row that is not committed, and a refused insert's transaction is still open, so what
is checked is what the statement wrote, not what a rollback undid.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from ticketing_common.db import Database
from ticketing_common.events.contracts import EventType, OrderCreated, OrderStatus, decode
from ticketing_common.events.outbox import outbox_table
from ticketing_common.testing import statements_of, wait_until
from ticketing_orders import service
from ticketing_orders.errors import ReorderCoolingDown, TicketAlreadyReserved, TooManyOpenOrders
from ticketing_orders.models import Order
from ticketing_orders.service import HoldRules, TakenTickets

from .conftest import Tickets

RULES = HoldRules(
    window=timedelta(seconds=900),
    max_open=1,
    reorder_cooldown=timedelta(seconds=180),
    max_units=10,
)


@dataclass(frozen=True)
class Recorded:
    """An order:created waiting in the outbox, and its row's body as stored."""

    event: OrderCreated
    body: dict[str, object]


async def announced(session: AsyncSession, *, buyer: UUID, ticket_id: UUID) -> list[Recorded]:
    """The order:created rows of the buyer's orders of the ticket in the outbox, as the
    session sees it (its own transaction's rows too)."""
    bodies = await session.scalars(
        select(outbox_table.c.body).where(
            outbox_table.c.event_type == EventType.ORDER_CREATED.value
        )
    )
    recorded = [
        Recorded(decode(body.encode(), OrderCreated).data, json.loads(body)) for body in bodies
    ]
    return [
        row for row in recorded if row.event.user_id == buyer and row.event.ticket.id == ticket_id
    ]


async def stored(session: AsyncSession, order_id: UUID) -> Order:
    """The order's row as the session sees it now."""
    order = await session.scalar(
        select(Order).where(Order.id == order_id).execution_options(populate_existing=True)
    )
    assert order is not None
    return order


async def buy(session: AsyncSession, buyer: UUID, ticket_id: UUID, *, quantity: int = 1) -> Order:
    return await service.create_order(
        session,
        user_id=buyer,
        ticket_id=ticket_id,
        quantity=quantity,
        rules=RULES,
        taken=TakenTickets(),
    )


def expires_at_of(body: dict[str, object]) -> datetime:
    """The ``expiresAt`` of an outbox row's body, read from its JSON as a consumer does."""
    data = body["data"]
    assert isinstance(data, dict)
    return datetime.fromisoformat(data["expiresAt"])


def assert_announces(recorded: Sequence[Recorded], order: Order) -> None:
    """``recorded`` is exactly one order:created, of the stored ``order`` at version 0."""
    [row] = recorded
    event = row.event
    assert event.id == order.id
    assert (event.version, event.status) == (0, OrderStatus.CREATED)
    assert event.user_id == order.user_id
    assert expires_at_of(row.body) == event.expires_at == order.expires_at
    assert event.ticket.id == order.ticket_id
    assert event.ticket.price == Decimal(order.price_cents) / 100
    assert event.ticket.general_admission is order.general_admission
    assert event.quantity == order.quantity


async def test_a_seat_order_and_its_order_created_are_written_by_the_same_one_statement(
    tickets: Tickets, db: Database
) -> None:
    ticket = await tickets.listed(price="12.34")
    buyer = uuid4()

    async with db.transaction() as session:
        with statements_of(db) as sent:
            order = await buy(session, buyer, ticket.id)
        # The ticket's read (its locks, and now()), then the order with its event.
        [read, written] = sent
        assert "FOR SHARE" in read
        assert "INSERT INTO orders" in written
        assert "INSERT INTO outbox" in written

        row = await stored(session, order.id)
        assert (row.expires_at, row.version, row.price_cents) == (order.expires_at, 0, 1234)
        assert_announces(await announced(session, buyer=buyer, ticket_id=ticket.id), row)


async def test_the_events_expiry_is_the_rows_to_the_microsecond_and_a_window_from_now(
    tickets: Tickets, db: Database
) -> None:
    """Counted in Python from the read's now(), stored as is: the same instant in both,
    one window after the transaction began on the database's clock."""
    ticket = await tickets.listed()
    buyer = uuid4()

    async with db.transaction() as session:
        order = await buy(session, buyer, ticket.id)
        began = (await session.execute(select(func.now()))).scalar_one()
        [recorded] = await announced(session, buyer=buyer, ticket_id=ticket.id)
        expires_at = (await stored(session, order.id)).expires_at

    assert expires_at_of(recorded.body) == expires_at == began + RULES.window


async def test_a_listings_units_order_and_its_order_created_are_one_statement_too(
    tickets: Tickets, db: Database
) -> None:
    listing = await tickets.listed(price="5.00", units=5)
    buyer = uuid4()

    async with db.transaction() as session:
        with statements_of(db) as sent:
            order = await buy(session, buyer, listing.id, quantity=3)
        [written] = [statement for statement in sent if "INSERT INTO orders" in statement]
        assert "INSERT INTO outbox" in written

        row = await stored(session, order.id)
        assert (row.quantity, row.general_admission) == (3, True)
        assert_announces(await announced(session, buyer=buyer, ticket_id=listing.id), row)


async def test_an_insert_refused_for_a_seat_another_order_holds_records_no_event(
    tickets: Tickets, db: Database, migrated_url: str
) -> None:
    """The holder commits after the other buyer's read found the seat free: that
    buyer's insert (ON CONFLICT DO NOTHING, rule 1) waits for it, then writes no order,
    and so no event either."""
    ticket = await tickets.listed()
    holder, other = uuid4(), uuid4()
    buyers = Database(migrated_url, pool_size=2)
    try:
        async with buyers.transaction() as holding:
            held = await buy(holding, holder, ticket.id)
            assert_announces(await announced(holding, buyer=holder, ticket_id=ticket.id), held)
            other_buys = asyncio.create_task(
                refused_purchase(buyers, other, ticket.id, TicketAlreadyReserved)
            )
            await wait_until(lambda: an_order_insert_waits(db))
            assert not other_buys.done()
        # The holder committed: the waiting insert went on, found the seat held.
        assert await asyncio.wait_for(other_buys, 10) == []
    finally:
        await buyers.dispose()


async def test_an_insert_refused_for_the_buyers_cap_records_no_event(
    tickets: Tickets, db: Database
) -> None:
    """The seat is free, so the insert runs, and its cap condition (rule 14) refuses."""
    first, second = await tickets.listed(), await tickets.listed()
    buyer = uuid4()
    async with db.transaction() as session:
        await buy(session, buyer, first.id)  # the one open order RULES allow

    assert await refused_purchase(db, buyer, second.id, TooManyOpenOrders) == []


async def test_an_insert_refused_for_the_buyers_cool_down_records_no_event(
    tickets: Tickets, db: Database
) -> None:
    ticket = await tickets.listed()
    buyer = uuid4()
    async with db.transaction() as session:
        cancelled = await buy(session, buyer, ticket.id)
    async with db.transaction() as session:
        await service.cancel_order(session, user_id=buyer, order_id=cancelled.id)

    recorded = await refused_purchase(db, buyer, ticket.id, ReorderCoolingDown)
    # The cancelled order's own order:created may still wait for the relay.
    assert [row for row in recorded if row.event.id != cancelled.id] == []


async def refused_purchase(
    database: Database, buyer: UUID, ticket_id: UUID, refusal: type[Exception]
) -> list[Recorded]:
    """The order:created of the buyer's orders of the ticket in the outbox, as the
    transaction of a purchase the order's insert refused sees it, before it ends."""
    async with database.transaction() as session:
        with statements_of(database) as sent, pytest.raises(refusal):
            await buy(session, buyer, ticket_id)
        assert any("INSERT INTO orders" in statement for statement in sent), sent
        return await announced(session, buyer=buyer, ticket_id=ticket_id)


async def an_order_insert_waits(db: Database) -> bool:
    """Whether a statement inserting an order waits for a lock (another transaction)."""
    async with db.engine.connect() as connection:
        waiting = await connection.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE '%INSERT INTO orders%'"
            )
        )
    return bool(waiting)
