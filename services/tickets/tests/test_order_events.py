"""order:created locks a ticket, order:cancelled frees it; in version order, exactly once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid4

import httpx

from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import (
    CancelReason,
    Envelope,
    OrderCancelled,
    OrderCompleted,
    OrderCreated,
    OrderStatus,
    P,
    PricedTicketRef,
    TicketRef,
    TicketUpdated,
)
from ticketing_common.events.listener import ListenerGroup
from ticketing_common.testing import ServedApp, tried_and_not_acked, wait_until

from .conftest import EventsOf, NewTicket

EDIT = {"title": "Changed", "price": 1}


def order_created(ticket: dict[str, object], order_id: UUID | None = None) -> OrderCreated:
    return OrderCreated(
        id=order_id or uuid4(),
        version=0,
        status=OrderStatus.CREATED,
        user_id=uuid4(),
        expires_at=datetime.now(UTC) + timedelta(minutes=15),
        ticket=PricedTicketRef(id=UUID(str(ticket["id"])), price=Decimal("20.50")),
    )


def order_cancelled(
    created: OrderCreated, version: int = 1, reason: CancelReason = CancelReason.CANCELLED
) -> OrderCancelled:
    return OrderCancelled(
        id=created.id, version=version, ticket=TicketRef(id=created.ticket.id), reason=reason
    )


def order_completed(created: OrderCreated) -> OrderCompleted:
    """Paid: at the order's current version (completion does not bump it)."""
    return OrderCompleted(
        id=created.id, version=created.version, user_id=created.user_id, ticket=created.ticket
    )


async def ticket_where(
    client: httpx.AsyncClient, ticket: dict[str, object], **expected: object
) -> dict[str, object]:
    """The ticket once its fields have the expected values."""

    async def probe() -> dict[str, object] | None:
        body: dict[str, object] = (await client.get(f"/api/tickets/{ticket['id']}")).json()
        return body if all(body[key] == value for key, value in expected.items()) else None

    return await wait_until(probe)


async def at_least(
    count: int, events_of: EventsOf, payload_type: type[TicketUpdated]
) -> list[Envelope[TicketUpdated]] | None:
    """The events of a type once there are ``count`` of them."""
    events = await events_of(payload_type)
    return events if len(events) >= count else None


def listeners_of(served: ServedApp) -> ListenerGroup:
    return served.component(ListenerGroup)


async def test_order_created_locks_the_ticket_and_publishes_ticket_updated(
    client: httpx.AsyncClient, new_ticket: NewTicket, bus: EventBus, events_of: EventsOf
) -> None:
    ticket = await new_ticket()
    order = order_created(ticket)
    await bus.publish(Envelope.of(order))
    await ticket_where(client, ticket, orderId=str(order.id), version=1)
    events = await wait_until(lambda: events_of(TicketUpdated))
    assert [(e.data.version, e.data.order_id) for e in events] == [(1, order.id)]


async def test_locked_ticket_cannot_be_edited_and_leaves_the_list(
    client: httpx.AsyncClient, new_ticket: NewTicket, seller: httpx.AsyncClient, bus: EventBus
) -> None:
    ticket = await new_ticket()
    order = order_created(ticket)
    await bus.publish(Envelope.of(order))
    await ticket_where(client, ticket, orderId=str(order.id))
    response = await seller.put(f"/api/tickets/{ticket['id']}", json=EDIT)
    assert response.status_code == 409
    assert (await client.get("/api/tickets")).json() == []


async def test_order_cancelled_frees_the_ticket_for_editing_and_sale(
    client: httpx.AsyncClient,
    new_ticket: NewTicket,
    seller: httpx.AsyncClient,
    bus: EventBus,
    events_of: EventsOf,
) -> None:
    ticket = await new_ticket()
    order = order_created(ticket)
    await bus.publish(Envelope.of(order))
    await ticket_where(client, ticket, version=1)
    await bus.publish(Envelope.of(order_cancelled(order)))
    await ticket_where(client, ticket, orderId=None, version=2)
    events = await wait_until(lambda: at_least(2, events_of, TicketUpdated))
    assert [(e.data.version, e.data.order_id) for e in events] == [(1, order.id), (2, None)]
    assert [t["id"] for t in (await client.get("/api/tickets")).json()] == [ticket["id"]]
    response = await seller.put(f"/api/tickets/{ticket['id']}", json=EDIT)
    assert response.status_code == 200
    assert response.json()["version"] == 3


async def test_the_same_order_created_delivered_twice_changes_the_ticket_once(
    client: httpx.AsyncClient,
    new_ticket: NewTicket,
    bus: EventBus,
    served: ServedApp,
    events_of: EventsOf,
) -> None:
    ticket = await new_ticket()
    envelope = Envelope.of(order_created(ticket))
    subject = bus.subjects.of(envelope.type)
    # Two messages with one envelope (as a redelivery or a dead-letter replay makes):
    # different broker message ids, so JetStream's de-duplication does not drop one.
    await bus.publish_raw(subject, envelope.to_json(), msg_id="first")
    await bus.publish_raw(subject, envelope.to_json(), msg_id="second")
    await wait_until(lambda: listeners_of(served).handled >= 2)
    body = await ticket_where(client, ticket, orderId=str(envelope.data.id))
    assert body["version"] == 1
    events = await wait_until(lambda: events_of(TicketUpdated))
    assert len(events) == 1


def consumer_of(served: ServedApp, payload_type: type[P]) -> str:
    return listeners_of(served).durable_name(payload_type.event_type)


async def test_order_created_for_a_ticket_held_by_another_order_waits_for_its_cancel(
    client: httpx.AsyncClient, new_ticket: NewTicket, bus: EventBus, served: ServedApp
) -> None:
    ticket = await new_ticket()
    holder, newcomer = order_created(ticket), order_created(ticket)
    await bus.publish(Envelope.of(holder))
    await ticket_where(client, ticket, orderId=str(holder.id), version=1)
    # The newcomer's created overtakes the holder's cancel: it is retried, not dropped ...
    await bus.publish(Envelope.of(newcomer))
    await tried_and_not_acked(bus, consumer_of(served, OrderCreated))
    assert (await client.get(f"/api/tickets/{ticket['id']}")).json()["orderId"] == str(holder.id)
    # ... and takes the ticket once the holder's cancel has freed it.
    await bus.publish(Envelope.of(order_cancelled(holder)))
    await ticket_where(client, ticket, orderId=str(newcomer.id), version=3)
    assert listeners_of(served).dead_lettered == 0


async def test_a_waiting_order_that_is_cancelled_never_takes_or_frees_the_holders_ticket(
    client: httpx.AsyncClient, new_ticket: NewTicket, bus: EventBus, served: ServedApp
) -> None:
    ticket = await new_ticket()
    holder, intruder = order_created(ticket), order_created(ticket)
    await bus.publish(Envelope.of(holder))
    await ticket_where(client, ticket, orderId=str(holder.id))
    await bus.publish(Envelope.of(intruder))
    await tried_and_not_acked(bus, consumer_of(served, OrderCreated))
    # The intruder's cancellation settles it: its created stops waiting, and neither
    # event touches the holder's lock.
    await bus.publish(Envelope.of(order_cancelled(intruder)))
    await wait_until(lambda: listeners_of(served).handled >= 3, timeout=30)
    body = await ticket_where(client, ticket, orderId=str(holder.id))
    assert body["version"] == 1
    assert listeners_of(served).dead_lettered == 0


async def test_order_cancelled_arriving_before_its_order_created_leaves_the_ticket_free(
    client: httpx.AsyncClient,
    new_ticket: NewTicket,
    bus: EventBus,
    served: ServedApp,
    events_of: EventsOf,
) -> None:
    ticket = await new_ticket()
    order = order_created(ticket)
    # The cancellation is the order's last event: applied at once, nothing waits.
    await bus.publish(Envelope.of(order_cancelled(order)))
    await wait_until(lambda: listeners_of(served).handled >= 1)
    await bus.publish(Envelope.of(order))
    await wait_until(lambda: listeners_of(served).handled >= 2)
    body = (await client.get(f"/api/tickets/{ticket['id']}")).json()
    assert (body["orderId"], body["version"]) == (None, 0)
    assert await events_of(TicketUpdated) == []


async def test_order_created_for_an_unknown_ticket_is_acked_and_ignored(
    bus: EventBus, served: ServedApp
) -> None:
    await bus.publish(Envelope.of(order_created({"id": str(uuid4())})))
    await wait_until(lambda: listeners_of(served).handled >= 1)
    assert listeners_of(served).dead_lettered == 0


async def test_a_ticket_goes_for_sale_reserved_sold_and_back_on_sale_after_a_refund(
    client: httpx.AsyncClient,
    new_ticket: NewTicket,
    seller: httpx.AsyncClient,
    bus: EventBus,
    served: ServedApp,
    events_of: EventsOf,
) -> None:
    ticket = await new_ticket()
    url = f"/api/tickets/{ticket['id']}"
    assert ticket["status"] == "for-sale"
    order = order_created(ticket)
    await bus.publish(Envelope.of(order))
    await ticket_where(client, ticket, status="reserved", version=1)
    withdraw = await seller.post(f"{url}/withdraw")
    assert (withdraw.status_code, withdraw.json()) == (
        409,
        {"errors": [{"message": "Ticket is reserved"}]},
    )

    paid = Envelope.of(order_completed(order))
    await bus.publish(paid)
    # Not a new version: a sale is a fact orders already knows, not a replica change.
    sold = await ticket_where(client, ticket, status="sold", version=1)
    sold_conflict = {"errors": [{"message": "Ticket is sold"}]}
    for refused in (await seller.post(f"{url}/withdraw"), await seller.put(url, json=EDIT)):
        assert (refused.status_code, refused.json()) == (409, sold_conflict)
    # Redelivered (a new message of the same event): nothing changes.
    subject = bus.subjects.of(paid.type)
    await bus.publish_raw(subject, paid.to_json(), msg_id=f"{paid.id}-again")
    await wait_until(lambda: listeners_of(served).handled >= 3)
    assert (await client.get(url)).json() == sold

    refund = order_cancelled(order, reason=CancelReason.REFUNDED)
    await bus.publish(Envelope.of(refund))
    await ticket_where(client, ticket, status="for-sale", orderId=None, version=2)
    assert [t["id"] for t in (await client.get("/api/tickets")).json()] == [ticket["id"]]
    events = await wait_until(lambda: at_least(2, events_of, TicketUpdated))
    assert [(e.data.version, e.data.order_id) for e in events] == [(1, order.id), (2, None)]
    assert listeners_of(served).dead_lettered == 0
