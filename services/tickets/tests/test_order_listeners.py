"""The order handlers called directly, each in its own transaction as the listener runs
them: what they change in tickets' tables, and what they refuse to change."""

from __future__ import annotations

import json
import random
from typing import Any
from uuid import UUID, uuid4

import pytest
from sqlalchemy import func, select, update

from ticketing_common.db import Database
from ticketing_common.events.contracts import (
    CancelReason,
    EventType,
)
from ticketing_common.events.listener import RetryLater
from ticketing_common.events.outbox import outbox_table
from ticketing_common.testing import statements_of
from ticketing_tickets import repository
from ticketing_tickets.listeners import (
    CompletedBeforeCreated,
)
from ticketing_tickets.models import OrderRef, Ticket, TicketStatus, Units

from .conftest import OrderEvent, cancelled, completed, created, deliver, deliver_shuffled


async def listed(db: Database) -> UUID:
    async with db.transaction() as session:
        ticket = await repository.insert_ticket(
            session, title="Concert", price_cents=2050, user_id=uuid4()
        )
        return ticket.id


async def snapshot(db: Database, ticket_id: UUID) -> tuple[UUID | None, int, int, list[UUID]]:
    """(holder, ticket version, outbox rows, refs of orders of the ticket)."""
    async with db.transaction() as session:
        ticket = await session.get_one(Ticket, ticket_id)
        pending = await session.scalar(select(func.count()).select_from(outbox_table))
        refs = await session.scalars(select(OrderRef.id).where(OrderRef.ticket_id == ticket_id))
        return ticket.order_id, ticket.version, pending or 0, sorted(refs)


async def test_order_created_for_a_ticket_held_by_another_raises_retry_later_and_changes_nothing(
    db: Database,
) -> None:
    ticket_id = await listed(db)
    holder, newcomer = created(ticket_id), created(ticket_id)
    await deliver(db, holder)
    before = await snapshot(db, ticket_id)
    assert before[:2] == (holder.data.id, 1)

    with pytest.raises(RetryLater, match=str(holder.data.id)):
        await deliver(db, newcomer)
    # Rolled back: no ref for the newcomer, so its next delivery is not a "duplicate".
    assert await snapshot(db, ticket_id) == before

    await deliver(db, cancelled(holder))
    await deliver(db, newcomer)
    holder_id, version, _, refs = await snapshot(db, ticket_id)
    assert (holder_id, version) == (newcomer.data.id, 3)
    assert refs == sorted([holder.data.id, newcomer.data.id])


async def test_order_cancelled_before_its_created_settles_the_order_and_the_created_locks_nothing(
    db: Database,
) -> None:
    ticket_id = await listed(db)
    order = created(ticket_id)
    await deliver(db, cancelled(order))  # no waiting for the created
    await deliver(db, order)
    assert await snapshot(db, ticket_id) == (None, 0, 0, [order.data.id])


async def test_a_cancelled_newcomer_stops_waiting_and_never_frees_the_holders_ticket(
    db: Database,
) -> None:
    ticket_id = await listed(db)
    holder, newcomer = created(ticket_id), created(ticket_id)
    await deliver(db, holder)
    with pytest.raises(RetryLater):
        await deliver(db, newcomer)
    await deliver(db, cancelled(newcomer))
    await deliver(db, newcomer)  # its retry: the order is cancelled, nothing to wait for
    holder_id, version, _, _ = await snapshot(db, ticket_id)
    assert (holder_id, version) == (holder.data.id, 1)


async def test_a_repeated_order_created_locks_a_ticket_its_order_should_hold(
    db: Database,
) -> None:
    ticket_id = await listed(db)
    order = created(ticket_id)
    await deliver(db, order)
    # A ticket left free under a live order (as the handler that dropped events left it).
    async with db.transaction() as session:
        await session.execute(update(Ticket).where(Ticket.id == ticket_id).values(order_id=None))
    await deliver(db, order)  # redelivered, replayed or re-announced
    holder_id, version, _, _ = await snapshot(db, ticket_id)
    assert (holder_id, version) == (order.data.id, 2)
    await deliver(db, order)  # and a further repeat changes nothing
    assert (await snapshot(db, ticket_id))[:2] == (order.data.id, 2)


async def test_a_repeated_order_cancelled_frees_a_ticket_its_order_still_holds(
    db: Database,
) -> None:
    ticket_id = await listed(db)
    order = created(ticket_id)
    await deliver(db, order)
    cancel = cancelled(order)
    await deliver(db, cancel)
    async with db.transaction() as session:
        await session.execute(
            update(Ticket).where(Ticket.id == ticket_id).values(order_id=order.data.id)
        )
    await deliver(db, cancel)
    assert (await snapshot(db, ticket_id))[:2] == (None, 3)


async def sold_at_of(db: Database, ticket_id: UUID) -> object:
    async with db.transaction() as session:
        return (await session.get_one(Ticket, ticket_id)).sold_at


async def test_order_completed_before_its_created_waits_then_marks_the_ticket_sold_once(
    db: Database,
) -> None:
    ticket_id = await listed(db)
    order = created(ticket_id)
    paid = completed(order)
    # Its created may be waiting for the ticket's previous holder: wait with it.
    with pytest.raises(CompletedBeforeCreated):
        await deliver(db, paid)
    await deliver(db, order)
    await deliver(db, paid)
    sold_at = await sold_at_of(db, ticket_id)
    assert sold_at is not None
    await deliver(db, paid)  # a repeat changes nothing
    assert await sold_at_of(db, ticket_id) == sold_at
    # Not versioned: no new version and no ticket:updated beyond the reservation's.
    assert await snapshot(db, ticket_id) == (order.data.id, 1, 1, [order.data.id])


async def test_a_refund_overtaking_order_completed_leaves_the_ticket_for_sale(
    db: Database,
) -> None:
    ticket_id = await listed(db)
    order = created(ticket_id)
    await deliver(db, order)
    await deliver(db, cancelled(order, CancelReason.REFUNDED))
    await deliver(db, completed(order))  # late: its order no longer holds the ticket
    assert await sold_at_of(db, ticket_id) is None
    assert (await snapshot(db, ticket_id))[:2] == (None, 2)


async def test_a_refund_of_a_sold_ticket_puts_it_back_on_sale(db: Database) -> None:
    ticket_id = await listed(db)
    order = created(ticket_id)
    await deliver(db, order)
    await deliver(db, completed(order))
    await deliver(db, cancelled(order, CancelReason.REFUNDED))
    assert await sold_at_of(db, ticket_id) is None
    assert (await snapshot(db, ticket_id))[:2] == (None, 2)


async def test_an_order_for_a_withdrawn_ticket_reserves_nothing_and_its_cancel_frees_nothing(
    db: Database,
) -> None:
    ticket_id = await listed(db)
    async with db.transaction() as session:
        ticket = await session.get_one(Ticket, ticket_id)
        assert await repository.withdraw(session, ticket_id, ticket.user_id) is not None
    order = created(ticket_id)
    await deliver(db, order)  # no RetryLater: a withdrawal is final, nothing to wait for
    await deliver(db, order)  # nor on a repeat
    await deliver(db, completed(order))
    await deliver(db, cancelled(order, CancelReason.WITHDRAWN))
    async with db.transaction() as session:
        ticket = await session.get_one(Ticket, ticket_id)
        assert (ticket.withdrawn_at is not None, ticket.sold_at) == (True, None)
    # Only the withdrawal's version; no ticket:updated (the withdrawal's own event was
    # not recorded here: the repository was called directly).
    assert await snapshot(db, ticket_id) == (None, 1, 0, [order.data.id])


def lifecycle_outcomes(quantity: int | None) -> list[tuple[TicketStatus, Units, int, int]]:
    """(status, units, version, ticket:updated recorded) after an order's created, its
    repeat, its completion and its refund: a seat, or an order of all 3 units."""
    if quantity is None:
        return [
            (TicketStatus.RESERVED, Units(1, 0, 1, 0), 1, 1),
            (TicketStatus.RESERVED, Units(1, 0, 1, 0), 1, 0),
            (TicketStatus.SOLD, Units(1, 0, 0, 1), 1, 0),
            (TicketStatus.FOR_SALE, Units(1, 1, 0, 0), 2, 1),
        ]
    return [  # units are counted, not versions of the listing
        (TicketStatus.RESERVED, Units(3, 0, 3, 0), 0, 0),
        (TicketStatus.RESERVED, Units(3, 0, 3, 0), 0, 0),
        (TicketStatus.SOLD, Units(3, 0, 0, 3), 0, 0),
        (TicketStatus.FOR_SALE, Units(3, 3, 0, 0), 0, 0),
    ]


@pytest.mark.parametrize("quantity", [None, 3], ids=["seat", "general-admission"])
async def test_order_events_without_general_admission_look_it_up_and_apply_alike(
    db: Database, quantity: int | None
) -> None:
    """Orders says on every order event whether the ticket is general admission; an
    event from before it did (the field absent) is looked up, and handled the same."""
    sent: dict[bool | None, list[int]] = {}
    for says in (None, quantity is not None):
        async with db.transaction() as session:
            listing = await repository.insert_ticket(
                session, title="Concert", price_cents=2050, user_id=uuid4(), quantity=quantity
            )
        order = created(listing.id, quantity or 1, general_admission=says)
        lifecycle: list[OrderEvent] = [
            order,
            order,  # redelivered
            completed(order),
            cancelled(order, CancelReason.REFUNDED),
        ]
        outcomes: list[tuple[TicketStatus, Units, int, int]] = []
        sent[says] = []
        for delivery in lifecycle:
            with statements_of(db) as statements:
                await deliver(db, delivery)
            sent[says].append(len(statements))
            async with db.transaction() as session:
                ticket = await session.get_one(Ticket, listing.id)
                recorded = await session.scalars(
                    outbox_table.delete().returning(outbox_table.c.seq)
                )
                outcomes.append((ticket.status, ticket.units, ticket.version, len(recorded.all())))
        assert outcomes == lifecycle_outcomes(quantity), says
    old, new = sent
    # The lookup is the one statement more that an old event costs, on every delivery.
    assert sent[old] == [count + 1 for count in sent[new]]
    if quantity is None:
        # A new order of a free seat: its ref and the reservation, then ticket:updated.
        assert sent[new][0] == 2


async def test_orders_of_seats_made_and_cancelled_one_after_another_end_with_the_last_holding(
    migrated_url: str,
) -> None:
    """12 seats, each ordered by 4 orders in turn (each cancelled before the next was made,
    as orders allows; the last one live, or paid), every event delivered twice, all at once
    in random order over 8 connections, each retried while it must wait. Each seat ends
    held by its last order alone, sold if it was paid, and its ticket:updated events are
    exactly one per version, the last saying that order holds it."""
    db = Database(migrated_url, pool_size=8)
    try:
        rng = random.Random(14)
        events: list[OrderEvent] = []
        last: dict[UUID, tuple[UUID, bool]] = {}
        for _ in range(12):
            async with db.transaction() as session:
                seat = await repository.insert_ticket(
                    session, title="Seat", price_cents=2050, user_id=uuid4()
                )
            orders = [created(seat.id, general_admission=rng.choice([None, False])) for _ in "abcd"]
            events += orders
            events += [cancelled(order, rng.choice(list(CancelReason))) for order in orders[:-1]]
            paid = rng.random() < 0.5
            if paid:
                events.append(completed(orders[-1]))
            last[seat.id] = (orders[-1].data.id, paid)
        deliveries = events * 2
        rng.shuffle(deliveries)
        await deliver_shuffled(db, deliveries, connections=8)
        async with db.transaction() as session:
            bodies = await session.scalars(
                select(outbox_table.c.body).where(
                    outbox_table.c.event_type == EventType.TICKET_UPDATED.value
                )
            )
            published: dict[str, list[dict[str, Any]]] = {}
            for body in bodies:
                data = json.loads(body)["data"]
                published.setdefault(data["id"], []).append(data)
            for seat_id, (holder, paid) in last.items():
                ticket = await session.get_one(Ticket, seat_id)
                assert (ticket.order_id, ticket.sold_at is not None) == (holder, paid)
                versions = sorted(published[str(seat_id)], key=lambda data: data["version"])
                assert [data["version"] for data in versions] == list(range(1, ticket.version + 1))
                assert versions[-1]["orderId"] == str(holder)
    finally:
        await db.dispose()
