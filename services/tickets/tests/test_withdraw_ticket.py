"""POST /api/tickets/{id}/withdraw: the seller takes a ticket off sale for good (ticket:withdrawn);
409 while reserved or sold; and a withdrawal racing an order's reservation ends one way."""

from __future__ import annotations

import asyncio
from uuid import UUID, uuid4

import httpx
from sqlalchemy import select

from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import (
    CancelReason,
    Envelope,
    TicketUpdated,
    TicketWithdrawn,
)
from ticketing_common.events.listener import transactional
from ticketing_common.events.outbox import outbox_table
from ticketing_common.testing import ServedApp, wait_until
from ticketing_tickets.listeners import on_order_created
from ticketing_tickets.models import Ticket, TicketStatus

from .conftest import EventsOf, NewTicket
from .test_order_events import listeners_of, order_cancelled, order_created

EDIT = {"title": "Changed", "price": 1}


async def outbox_drained(db: Database) -> bool:
    async with db.transaction() as session:
        rows = await session.execute(outbox_table.select().limit(1))
        return rows.first() is None


async def test_withdrawing_is_200_once_publishes_ticket_withdrawn_and_hides_the_ticket(
    client: httpx.AsyncClient,
    new_ticket: NewTicket,
    seller: httpx.AsyncClient,
    stranger: httpx.AsyncClient,
    seller_id: UUID,
    db: Database,
    events_of: EventsOf,
) -> None:
    ticket = await new_ticket()
    url = f"/api/tickets/{ticket['id']}"
    response = await seller.post(f"{url}/withdraw")
    assert response.status_code == 200, response.text
    withdrawn = response.json()
    gone = {"total": 1, "available": 0, "held": 0, "sold": 0}
    assert withdrawn == {**ticket, "status": "withdrawn", "version": 1, "units": gone}
    # A repeat is a no-op 200: same version, no second event.
    again = await seller.post(f"{url}/withdraw")
    assert (again.status_code, again.json()) == (200, withdrawn)

    assert (await client.get("/api/tickets")).json() == []
    for other in (client, stranger):
        assert (await other.get(url)).status_code == 404
    assert (await seller.get(url)).json() == withdrawn
    edit = await seller.put(url, json=EDIT)
    assert (edit.status_code, edit.json()) == (
        409,
        {"errors": [{"message": "Ticket is withdrawn"}]},
    )

    await wait_until(lambda: outbox_drained(db))
    events = await events_of(TicketWithdrawn)
    assert [event.data for event in events] == [
        TicketWithdrawn(id=UUID(str(ticket["id"])), version=1, user_id=seller_id)
    ]
    assert await events_of(TicketUpdated) == []


async def test_only_the_signed_in_seller_withdraws_an_existing_ticket(
    client: httpx.AsyncClient,
    new_ticket: NewTicket,
    seller: httpx.AsyncClient,
    stranger: httpx.AsyncClient,
) -> None:
    ticket = await new_ticket()
    url = f"/api/tickets/{ticket['id']}/withdraw"
    assert (await client.post(url)).status_code == 401
    refused = await stranger.post(url)
    assert (refused.status_code, refused.json()) == (
        403,
        {"errors": [{"message": "Only the seller can withdraw a ticket"}]},
    )
    assert (await seller.post(f"/api/tickets/{uuid4()}/withdraw")).status_code == 404
    assert (await seller.post("/api/tickets/not-a-uuid/withdraw")).status_code == 404
    assert (await client.get(f"/api/tickets/{ticket['id']}")).json() == ticket


async def test_an_order_made_before_the_withdrawal_reached_orders_reserves_nothing(
    client: httpx.AsyncClient,
    new_ticket: NewTicket,
    seller: httpx.AsyncClient,
    bus: EventBus,
    served: ServedApp,
    db: Database,
    events_of: EventsOf,
) -> None:
    """Orders' replica had not heard of the withdrawal yet: its order:created is acked
    (not waited on, not retried), and the order's cancel (reason withdrawn) frees nothing."""
    ticket = await new_ticket()
    url = f"/api/tickets/{ticket['id']}"
    assert (await seller.post(f"{url}/withdraw")).status_code == 200
    order = order_created(ticket)
    await bus.publish(Envelope.of(order))
    await wait_until(lambda: listeners_of(served).handled >= 1)
    cancel = order_cancelled(order)
    await bus.publish(Envelope.of(cancel.model_copy(update={"reason": CancelReason.WITHDRAWN})))
    await wait_until(lambda: listeners_of(served).handled >= 2)

    body = (await seller.get(url)).json()
    assert (body["status"], body["orderId"], body["version"]) == ("withdrawn", None, 1)
    assert listeners_of(served).dead_lettered == 0
    await wait_until(lambda: outbox_drained(db))
    assert await events_of(TicketUpdated) == []


async def test_withdrawals_racing_reservations_end_reserved_or_withdrawn_never_both(
    new_ticket: NewTicket,
    seller: httpx.AsyncClient,
    migrated_url: str,
    db: Database,
    served: ServedApp,
    events_of: EventsOf,
) -> None:
    """Each pair: the seller's withdrawal and the order:created handler (as the listener
    runs it) on one ticket at the same moment. One conditional UPDATE each decides:
    either the withdrawal is 409 and the order holds the ticket, or it is 200 and the
    ticket is withdrawn and was never reserved."""
    tickets = [await new_ticket(title=f"T{n}") for n in range(24)]
    orders = {UUID(str(ticket["id"])): order_created(ticket) for ticket in tickets}
    # Its own pool, so the handlers run as concurrently as the requests.
    database = Database(migrated_url, pool_size=12)
    reserve = transactional(database, on_order_created)
    try:
        outcomes = await asyncio.gather(
            *(
                asyncio.gather(
                    seller.post(f"/api/tickets/{ticket_id}/withdraw"), reserve(Envelope.of(order))
                )
                for ticket_id, order in orders.items()
            )
        )
    finally:
        await database.dispose()

    async with db.transaction() as session:
        rows = {row.id: row for row in await session.scalars(select(Ticket))}
    withdrawn: set[UUID] = set()
    for (ticket_id, order), (response, _) in zip(orders.items(), outcomes, strict=True):
        row = rows[ticket_id]
        if response.status_code == 200:
            withdrawn.add(ticket_id)
            assert (row.status, row.order_id) == (TicketStatus.WITHDRAWN, None)
        else:
            assert (response.status_code, response.json()) == (
                409,
                {"errors": [{"message": "Ticket is reserved"}]},
            )
            assert (row.status, row.order_id) == (TicketStatus.RESERVED, order.id)
        assert row.version == 1  # changed once, by whichever came first
    # The events say the same: a withdrawal for each 200, a reservation for each 409.
    await wait_until(lambda: outbox_drained(db))
    assert {event.data.id for event in await events_of(TicketWithdrawn)} == withdrawn
    reservations = await events_of(TicketUpdated)
    assert {event.data.id for event in reservations} == set(orders) - withdrawn
    assert all(event.data.order_id == orders[event.data.id].id for event in reservations)
