"""Tickets' event listeners: order:created locks a ticket, order:cancelled frees it.

Both handlers run in their own transaction (``transactional``) and are acked
after it commits. Idempotency and order come from the ``order_refs`` replica,
applied with ``apply_versioned``: the ticket is touched only when the order's
version is APPLIED. A redelivered event is a DUPLICATE and changes nothing; an
order:cancelled that overtakes its order:created is a version gap, retried
until the created has been applied, so the ticket cannot stay locked by an
order that was cancelled first.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing_common.db import Database
from ticketing_common.events import outbox
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import Envelope, OrderCancelled, OrderCreated
from ticketing_common.events.listener import ListenerGroup, RetryPolicy, transactional
from ticketing_common.events.replica import Applied, apply_versioned
from ticketing_tickets import repository
from ticketing_tickets.models import OrderRef
from ticketing_tickets.service import ticket_updated

logger = logging.getLogger("ticketing.tickets.listeners")

SERVICE = "tickets"  # durable consumers: tickets-order-created, tickets-order-cancelled


async def on_order_created(event: Envelope[OrderCreated], session: AsyncSession) -> None:
    order = event.data
    applied = await apply_versioned(
        session, OrderRef, id=order.id, version=order.version, values={"ticket_id": order.ticket.id}
    )
    if applied is Applied.DUPLICATE:
        return  # redelivery: the first delivery already reserved (or refused) the ticket
    # Conditional on the ticket being free, so it cannot race an edit or another order.
    ticket = await repository.reserve(session, order.ticket.id, order.id)
    if ticket is None:
        current = await repository.ticket_by_id(session, order.ticket.id)
        log = {"order_id": str(order.id), "ticket_id": str(order.ticket.id)}
        if current is None:
            # Tickets owns tickets: an order for an unknown one is a bug elsewhere,
            # and no retry can fix it.
            logger.error("order:created for an unknown ticket; ignored", extra=log)
        else:
            # Orders guarantees one holding order per ticket; never steal the lock.
            logger.warning(
                "order:created for a ticket held by another order; ignored",
                extra={**log, "held_by": str(current.order_id)},
            )
        return
    await outbox.record(session, ticket_updated(ticket))


async def on_order_cancelled(event: Envelope[OrderCancelled], session: AsyncSession) -> None:
    order = event.data
    # Raises VersionGap (retried later) when the order's created has not been applied yet.
    applied = await apply_versioned(
        session, OrderRef, id=order.id, version=order.version, values={"ticket_id": order.ticket.id}
    )
    if applied is Applied.DUPLICATE:
        return  # redelivery: the ticket was already freed
    # Only the order that holds the ticket frees it: a cancelled order whose
    # created was refused must not release another order's lock.
    ticket = await repository.release(session, order.ticket.id, order.id)
    if ticket is None:
        logger.info(
            "order:cancelled for a ticket that order does not hold; nothing to free",
            extra={"order_id": str(order.id), "ticket_id": str(order.ticket.id)},
        )
        return
    await outbox.record(session, ticket_updated(ticket))


def order_listeners(bus: EventBus, database: Database, policy: RetryPolicy) -> ListenerGroup:
    listeners = ListenerGroup(bus, service=SERVICE, policy=policy)
    listeners.add(OrderCreated, transactional(database, on_order_created))
    listeners.add(OrderCancelled, transactional(database, on_order_cancelled))
    return listeners
