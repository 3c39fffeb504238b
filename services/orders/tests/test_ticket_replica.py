"""The ticket replica follows ticket:created / ticket:updated in version order (SPEC §4)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from uuid import uuid4

from sqlalchemy import func, select

from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import Envelope, TicketCreated, TicketUpdated
from ticketing_common.events.listener import ListenerGroup
from ticketing_common.testing import ServedApp, wait_until
from ticketing_orders.listeners import created_together, on_ticket_created
from ticketing_orders.models import TicketUnit

from .conftest import Tickets, replica_ticket


def _update(ticket: TicketCreated, version: int, title: str, price: str) -> TicketUpdated:
    return TicketUpdated(
        id=ticket.id,
        version=version,
        title=title,
        price=Decimal(price),
        user_id=ticket.user_id,
        order_id=None,
    )


async def test_ticket_created_is_copied_with_the_same_id_price_in_cents_and_seller(
    tickets: Tickets, db: Database
) -> None:
    seller = uuid4()
    ticket = await tickets.listed(seller_id=seller, title="Opera", price="99.99")

    copy = await replica_ticket(db, ticket.id)

    assert copy is not None
    assert (copy.title, copy.price_cents, copy.seller_id, copy.version) == (
        "Opera",
        9999,
        seller,
        0,
    )


async def test_update_arriving_before_its_predecessor_is_applied_only_after_it(
    tickets: Tickets, bus: EventBus, db: Database, orders: ServedApp
) -> None:
    ticket = await tickets.listed(title="v0", price="10")

    await bus.publish(Envelope.of(_update(ticket, 2, "v2", "30")))
    await asyncio.sleep(0.5)  # v2 is delivered and refused: the replica is at v0
    copy = await replica_ticket(db, ticket.id)
    assert copy is not None
    assert (copy.version, copy.title) == (0, "v0")

    await bus.publish(Envelope.of(_update(ticket, 1, "v1", "20")))

    async def at_v2() -> bool:
        copy = await replica_ticket(db, ticket.id)
        return copy is not None and copy.version == 2

    await wait_until(at_v2)
    copy = await replica_ticket(db, ticket.id)
    assert copy is not None
    assert (copy.title, copy.price_cents) == ("v2", 3000)
    assert orders.component(ListenerGroup).dead_lettered == 0


async def test_duplicate_and_older_events_change_nothing(
    tickets: Tickets, bus: EventBus, db: Database, orders: ServedApp
) -> None:
    ticket = await tickets.listed(title="v0", price="10")
    v1 = _update(ticket, 1, "v1", "20")
    await bus.publish(Envelope.of(v1))

    async def at_v1() -> bool:
        copy = await replica_ticket(db, ticket.id)
        return copy is not None and copy.version == 1

    await wait_until(at_v1)
    listeners = orders.component(ListenerGroup)
    handled = listeners.handled

    # Redelivered with new event ids (so the broker does not de-duplicate them).
    await bus.publish(Envelope.of(v1.model_copy(update={"title": "stale"})))
    await bus.publish(Envelope.of(ticket.model_copy(update={"title": "stale"})))
    await wait_until(lambda: listeners.handled >= handled + 2)

    copy = await replica_ticket(db, ticket.id)
    assert copy is not None
    assert (copy.version, copy.title, copy.price_cents) == (1, "v1", 2000)
    assert listeners.dead_lettered == 0


async def test_a_batch_of_seats_and_a_listing_copies_each_and_gives_the_listing_its_units(
    db: Database,
) -> None:
    """The listener's batch step copies the seats at once and leaves the listing to its
    handler, which also gives it its units; applied either way, the batch ends alike."""

    def listed(units: int | None) -> Envelope[TicketCreated]:
        return Envelope.of(
            TicketCreated(
                id=uuid4(),
                version=0,
                title="Gig",
                price=Decimal("12"),
                user_id=uuid4(),
                general_admission=units is not None,
                quantity=units or 1,
            )
        )

    batch = [listed(None), listed(5), listed(None)]
    async with db.transaction() as session:
        claimed = await created_together(batch, session)
        for index, event in enumerate(batch):
            if index not in claimed:
                await on_ticket_created(event, session)

    assert claimed == {0, 2}
    for event in batch:
        copy = await replica_ticket(db, event.data.id)
        assert copy is not None
        assert (copy.version, copy.general_admission, copy.quantity) == (
            0,
            event.data.general_admission,
            event.data.quantity,
        )
    async with db.transaction() as session:
        units = await session.scalar(
            select(func.count()).where(TicketUnit.ticket_id == batch[1].data.id)
        )
    assert units == 5
