"""Tickets' event listeners: order:created locks a ticket, order:completed marks it sold,
order:cancelled frees it.

Both handlers run in their own transaction (``transactional``) and are acked
after it commits. Idempotency and order come from the ``order_refs`` replica,
applied with ``apply_versioned``: it records the last version seen of each order.

Two consumers, so two races (docs/concurrency.md):

- one order's cancel overtaking its own created: order:cancelled is an order's
  last event, so it settles the ref at once (``final``); the created, arriving
  later, finds the order cancelled and leaves the ticket alone;
- order B's created overtaking the cancel of order A, which still holds the
  ticket here: orders holds at most one order per ticket, so A's cancel is on its
  way. B's created is retried (``RetryLater``, its ref rolled back) until A's
  cancel has freed the ticket, never dropped. If that cancel never comes, B's
  event is dead-lettered after the bounded waits (an ERROR log), and
  ``python -m ticketing_orders.reannounce`` repairs the ticket.

Each handler makes the ticket agree with the order's last known state whether
the event is new or a repeat, so a redelivered, replayed or re-announced event
also repairs a ticket left wrong.

A withdrawn ticket is never locked: an order that raced the withdrawal (made from
orders' replica before it heard of ticket:withdrawn) is cancelled by orders, and
its order:cancelled finds nothing to free.

order:completed is not versioned (orders does not bump the order's version for
it): it marks sold only a ticket its order still holds. So a refund's
order:cancelled that overtakes it (the order's next, final version) has freed the
ticket already, and the late completed changes nothing; a completed that
overtakes its own order:created waits for it.

A general-admission listing is never held as a whole: its units are counted
(docs/general-admission.md). Each order event moves the order's share in its ref
(units held, units sold) and the listing's counts together, under the listing's row
lock, so one order's events through different consumers apply one after another:

- order:created (applied once, by ``apply_versioned``) counts its units held; a
  duplicate (a redelivery, or the created of an order whose cancel came first)
  counts nothing, so a cancel that overtakes its created never leaves units held;
- order:completed moves the units its order still holds to sold (none left: a
  repeat, or a refund came first); before its created it waits, as for a seat;
- order:cancelled (final) returns whatever its order's share still is, held or
  sold (a refund), and leaves it at zero, so a repeat returns nothing.

None of these is a version of the listing: no ticket:updated, no version bump.
"""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing_common.events import outbox
from ticketing_common.events.contracts import (
    Envelope,
    OrderCancelled,
    OrderCompleted,
    OrderCreated,
    PricedTicketRef,
    TicketRef,
)
from ticketing_common.events.listener import (
    RetryLater,
)
from ticketing_common.events.replica import Applied, apply_versioned
from ticketing_common.money import to_cents
from ticketing_tickets import repository
from ticketing_tickets.models import OrderRef
from ticketing_tickets.service import ticket_updated

logger = logging.getLogger("ticketing.tickets.listeners")

# Waiting for the holder's cancel: it usually trails by milliseconds, and while it is
# applied but the new order's lock is not, the ticket shows as for sale. So retry
# soon, and never more than 2 s apart; with the policy's 40 waits that is about 70 s
# before the event is dead-lettered.
HOLDER_WAIT_DELAY = 0.1
HOLDER_WAIT_MAX_DELAY = 2.0


class HeldByAnotherOrder(RetryLater):
    """The ticket is still held by an order whose order:cancelled has not arrived yet."""


class CompletedBeforeCreated(RetryLater):
    """order:completed of an order whose order:created has not been applied here yet."""


async def on_order_created(event: Envelope[OrderCreated], session: AsyncSession) -> None:
    order = event.data
    if await _general_admission(order.ticket, session):
        await _hold_units(order, session)
        return
    if order.version == 0:
        # The usual case, a new order of a free ticket, in one statement: its ref, and
        # the reservation only if the ref was new. Anything else falls through to the
        # steps below, each a fresh statement that sees what committed meanwhile.
        reserved = await repository.reserve_for_new_order(session, order.ticket.id, order.id)
        if reserved is not None:
            await outbox.record(session, ticket_updated(reserved))
            return
    else:
        await _apply_ref(order, session)
    await _reserve_unless_cancelled(order, session)


async def _reserve_unless_cancelled(order: OrderCreated, session: AsyncSession) -> None:
    """order:created of a seat whose ref is applied (new, or a duplicate) and did not
    reserve it at once: make the ticket agree with the order's last known state."""
    # The ref is at this version or past it (a duplicate). Past it: its order:cancelled
    # came first, and a cancelled order never takes the ticket.
    if await repository.order_ref_version(session, order.id) > order.version:
        return
    # Conditional on the ticket being free, so it cannot race an edit or another order.
    # A repeat (redelivery, replay, re-announcement) takes a ticket its order should
    # hold but does not (rule 13); the ref of a new order found the ticket taken.
    ticket = await repository.reserve(session, order.ticket.id, order.id)
    if ticket is not None:
        await outbox.record(session, ticket_updated(ticket))
        return
    current = await repository.ticket_by_id(session, order.ticket.id)
    log = {"order_id": str(order.id), "ticket_id": str(order.ticket.id)}
    if current is None:
        # Tickets owns tickets and orders only sells those it heard of from us, so
        # this is a bug elsewhere that no retry can fix; the ERROR is the alert.
        logger.error("order:created for an unknown ticket; nothing to lock", extra=log)
        return
    if current.order_id == order.id:
        return  # a repeat: this order already holds it
    if current.withdrawn_at is not None:
        # Race (withdrawal vs order): the seller withdrew it first. Final, so never
        # waited for: orders cancels this order when it hears ticket:withdrawn.
        logger.info("order:created for a withdrawn ticket; not reserved", extra=log)
        return
    # Orders lets a new order have a ticket only once the previous holder is cancelled,
    # so that order:cancelled is on its way through the other consumer. Wait for it
    # (the rollback undoes the ref too); never steal the lock, never drop this event.
    raise HeldByAnotherOrder(
        f"ticket {order.ticket.id} is held by order {current.order_id}; "
        f"order {order.id} waits for its order:cancelled",
        delay=HOLDER_WAIT_DELAY,
        max_delay=HOLDER_WAIT_MAX_DELAY,
    )


async def on_order_completed(event: Envelope[OrderCompleted], session: AsyncSession) -> None:
    order = event.data
    if await _general_admission(order.ticket, session):
        await _sell_units(order, session)
        return
    # Conditional on the order still holding the ticket: a refund's order:cancelled
    # that came first freed it, and then this changes nothing. A repeat finds it sold.
    if await repository.mark_sold(session, order.ticket.id, order.id):
        return
    if await repository.order_ref_version(session, order.id) < 0:
        # Neither its created nor its cancel has been applied: the created may be
        # waiting for the ticket's previous holder (HeldByAnotherOrder). Wait with it.
        raise CompletedBeforeCreated(
            f"order {order.id} completed before its order:created was applied",
            delay=HOLDER_WAIT_DELAY,
            max_delay=HOLDER_WAIT_MAX_DELAY,
        )
    # Otherwise final: sold already (a repeat), cancelled (its ticket freed), or a
    # ticket withdrawn before the order reached it (orders cancels the order).


async def on_order_cancelled(event: Envelope[OrderCancelled], session: AsyncSession) -> None:
    order = event.data
    if await _general_admission(order.ticket, session):
        await _release_units(order, session)
        return
    # An order's last event: applied at once, even before its created (which, arriving
    # later, is then a duplicate), so it never waits and never makes others wait.
    await _apply_ref(order, session, final=True)
    # Only the order that holds the ticket frees it: a cancelled order that never
    # got the lock must not release another order's (nor a withdrawn ticket, which
    # no order holds). Done on a repeat too: a cancelled order never holds a ticket,
    # whatever happened before. A refunded order's ticket was sold: it is for sale again.
    ticket = await repository.release(session, order.ticket.id, order.id)
    if ticket is not None:
        await outbox.record(session, ticket_updated(ticket))


async def _apply_ref(
    order: OrderCreated | OrderCancelled, session: AsyncSession, *, final: bool = False
) -> Applied:
    """Apply the order's version to its ref (``apply_versioned``), which names its ticket;
    ``final`` for its cancel, the last version."""
    return await apply_versioned(
        session,
        OrderRef,
        id=order.id,
        version=order.version,
        values={"ticket_id": order.ticket.id},
        final=final,
    )


async def _general_admission(ticket: TicketRef | PricedTicketRef, session: AsyncSession) -> bool:
    """Whether the order's ticket is a general-admission listing: as the event says, or
    looked up for an event published before orders said so."""
    if ticket.general_admission is not None:
        return ticket.general_admission
    return await repository.is_general_admission(session, ticket.id)


async def _hold_units(order: OrderCreated, session: AsyncSession) -> None:
    listing = await repository.lock_listing(session, order.ticket.id)
    applied = await _apply_ref(order, session)
    if applied is Applied.DUPLICATE:
        return  # a repeat (counted once already), or its cancel came first (nothing to hold)
    if listing.withdrawn:
        # Race (withdrawal vs order), as for a seat: orders cancels this order, and its
        # cancel finds nothing counted to return.
        log = {"order_id": str(order.id), "ticket_id": str(listing.id)}
        logger.info("order:created for a withdrawn listing; no units held", extra=log)
        return
    await repository.move_units(
        session, order_id=order.id, ticket_id=listing.id, held=order.quantity
    )


async def _sell_units(order: OrderCompleted, session: AsyncSession) -> None:
    await repository.lock_listing(session, order.ticket.id)
    ref = await repository.order_ref(session, order.id)
    if ref is None:
        # As for a seat: its created has not been applied yet. Wait for it.
        raise CompletedBeforeCreated(
            f"order {order.id} completed before its order:created was applied",
            delay=HOLDER_WAIT_DELAY,
            max_delay=HOLDER_WAIT_MAX_DELAY,
        )
    units = ref.units_held
    # None held: a repeat (sold already), a refund's cancel came first (returned), or
    # a withdrawn listing (never counted). Each sold unit fetched its order's price.
    if units:
        unit_cents = to_cents(order.ticket.price)
        await repository.move_units(
            session,
            order_id=order.id,
            ticket_id=ref.ticket_id,
            held=-units,
            sold=units,
            sold_cents=units * unit_cents,
        )


async def _release_units(order: OrderCancelled, session: AsyncSession) -> None:
    listing = await repository.lock_listing(session, order.ticket.id)
    # The order's last event: applied at once, even before its created (which, arriving
    # later, is then a duplicate and counts nothing).
    await _apply_ref(order, session, final=True)
    ref = await repository.order_ref(session, order.id)
    assert ref is not None  # just settled
    # Whatever the share still is: held (cancel, expiry), sold (a refund), or nothing (a
    # repeat, or its created not applied yet). Returned once, as it is left at zero.
    if ref.units_held or ref.units_sold:
        await repository.move_units(
            session,
            order_id=order.id,
            ticket_id=listing.id,
            held=-ref.units_held,
            sold=-ref.units_sold,
            sold_cents=-ref.sold_cents,
        )
