"""Property: however ticket events arrive — any order, any duplicates — orders' replica
ends exactly where in-order, exactly-once delivery would leave it."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from uuid import UUID, uuid4

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ticketing_common.db import Database
from ticketing_common.events.contracts import Envelope, TicketCreated, TicketUpdated
from ticketing_common.events.replica import VersionGap
from ticketing_common.money import to_cents
from ticketing_orders.listeners import on_ticket_created, on_ticket_updated
from ticketing_orders.models import TicketReplica

SELLER = uuid4()


def history(ticket_id: UUID, last: int) -> list[TicketCreated | TicketUpdated]:
    """The owner's changes v0..v<last>: each edits title and price."""
    created = TicketCreated(
        id=ticket_id, version=0, title="v0", price=Decimal("10.00"), user_id=SELLER
    )
    updates = [
        TicketUpdated(
            id=ticket_id,
            version=version,
            title=f"v{version}",
            price=Decimal(10 + version),
            user_id=SELLER,
        )
        for version in range(1, last + 1)
    ]
    return [created, *updates]


async def deliver(database: Database, event: TicketCreated | TicketUpdated) -> None:
    async with database.transaction() as session:
        if isinstance(event, TicketCreated):
            await on_ticket_created(Envelope.of(event), session)
        else:
            await on_ticket_updated(Envelope.of(event), session)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), last=st.integers(min_value=0, max_value=6))
def test_any_order_and_duplicates_of_ticket_events_end_in_the_in_order_state(
    migrated_url: str, data: st.DataObject, last: int
) -> None:
    ticket_id = uuid4()
    events = history(ticket_id, last)
    duplicates = data.draw(st.lists(st.sampled_from(events), max_size=8))
    deliveries = data.draw(st.permutations([*events, *duplicates]))

    async def scenario() -> tuple[int, str, int]:
        database = Database(migrated_url, pool_size=2)
        try:
            queue = list(deliveries)
            # The broker's redelivery: a gap goes back and comes again after the others.
            while queue:
                event = queue.pop(0)
                try:
                    await deliver(database, event)
                except VersionGap:
                    queue.append(event)
            async with database.transaction() as session:
                copy = await session.get_one(TicketReplica, ticket_id)
                return copy.version, copy.title, copy.price_cents
        finally:
            await database.dispose()

    final = events[-1]
    assert asyncio.run(scenario()) == (last, final.title, to_cents(final.price))
