"""Orders' business rules: reserving a ticket by ordering it, cancelling, completing,
refunding, withdrawing, checking in, reading.

Functions work in the caller's session and raise domain errors; the request
owns the transaction (it commits when the route returns, rolls back when it
raises), so an order and its outbox event commit together or not at all.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID, uuid4

from sqlalchemy.ext.asyncio import AsyncSession

from ticketing_common.admission import AdmissionCodes
from ticketing_common.events import outbox
from ticketing_common.events.contracts import (
    CancelReason,
    OrderCancelled,
    OrderCompleted,
    OrderCreated,
    OrderStatus,
    PricedTicketRef,
    TicketRef,
)
from ticketing_common.money import from_cents
from ticketing_orders import repository
from ticketing_orders.errors import (
    AdmissionVoided,
    InvalidAdmissionCode,
    ListingWithdrawn,
    NotEnoughTicketsLeft,
    NotTheSeller,
    OrderComplete,
    OrderNotFound,
    OwnTicket,
    QuantityNotAllowed,
    QuantityOfSeat,
    RefundAfterCheckIn,
    RefundOfUnpaidOrder,
    RefundPeriodEnded,
    ReorderCoolingDown,
    TicketAlreadyReserved,
    TicketNotFound,
    TooManyOpenOrders,
)
from ticketing_orders.models import Admission, Order
from ticketing_orders.settings import Settings

logger = logging.getLogger("ticketing.orders")


@dataclass(frozen=True)
class HoldRules:
    """What one buyer may hold (docs/security.md, "Fair holds")."""

    window: timedelta
    """How long a new order holds its ticket."""
    max_open: int
    """Open orders (created or awaiting payment) one buyer may hold at once."""
    reorder_cooldown: timedelta
    """How long after their order of a ticket was cancelled a buyer may not order it again."""
    max_units: int
    """Units of a general-admission listing one order may hold."""

    @classmethod
    def from_settings(cls, settings: Settings) -> HoldRules:
        return cls(
            window=timedelta(seconds=settings.EXPIRATION_WINDOW_SECONDS),
            max_open=settings.MAX_OPEN_ORDERS_PER_USER,
            reorder_cooldown=timedelta(seconds=settings.REORDER_COOLDOWN_SECONDS),
            max_units=settings.MAX_UNITS_PER_ORDER,
        )


class TakenTickets:
    """Tickets this process recently saw taken: a seat it reserved or refused as held,
    a listing it refused as sold out. A hint of where a look outside any transaction
    (``repository.glance_at_ticket``) is likely to refuse an order by itself; it decides
    nothing. A ticket not in it goes straight to the transaction, which decides as
    well and spares a purchase that succeeds the look's statement; one in it that the
    look finds free again leaves it. The oldest leave when it is full."""

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._seen: OrderedDict[UUID, None] = OrderedDict()

    def __contains__(self, ticket_id: UUID) -> bool:
        return ticket_id in self._seen

    def saw_taken(self, ticket_id: UUID) -> None:
        self._seen[ticket_id] = None
        self._seen.move_to_end(ticket_id)
        if len(self._seen) > self._size:
            self._seen.popitem(last=False)

    def saw_free(self, ticket_id: UUID) -> None:
        self._seen.pop(ticket_id, None)


async def create_order(
    session: AsyncSession,
    *,
    user_id: UUID,
    ticket_id: UUID,
    quantity: int = 1,
    rules: HoldRules,
    taken: TakenTickets,
) -> Order:
    """Reserve a seat, or ``quantity`` units of a general-admission listing, for the buyer."""
    if quantity > rules.max_units:
        raise QuantityNotAllowed(rules.max_units)
    try:
        order = await _reserve(session, user_id, ticket_id, quantity, rules, taken)
    except (TicketAlreadyReserved, NotEnoughTicketsLeft):
        taken.saw_taken(ticket_id)
        raise
    if not order.general_admission:
        taken.saw_taken(ticket_id)  # held now: the next buyer of it is likely refused
    return order


async def _reserve(
    session: AsyncSession,
    user_id: UUID,
    ticket_id: UUID,
    quantity: int,
    rules: HoldRules,
    taken: TakenTickets,
) -> Order:
    if ticket_id in taken:
        # A look first, outside any transaction and without a lock: most requests of
        # a sell-out ask for stock that is gone, and are answered from it alone.
        glance = _orderable(
            await repository.glance_at_ticket(
                session, ticket_id, user_id, quantity, rules.reorder_cooldown
            ),
            user_id,
            quantity,
        )
        if glance.taken_against is not None:
            _check_standing(glance.taken_against, rules)  # the buyer's own rules first
            if glance.ticket.general_admission:
                raise NotEnoughTicketsLeft()
            raise TicketAlreadyReserved(field="ticketId")
        taken.saw_free(ticket_id)
    # Then the decision, under the locks: everything the glance found is read again.
    # Share-locked: a withdrawal of this ticket waits for this order, or this for it.
    # And the buyer's lock taken: their concurrent orders are decided one at a time
    # (until this transaction ends), so together they never pass the cap.
    read = _orderable(
        await repository.ticket_to_order(session, ticket_id, user_id, rules.reorder_cooldown),
        user_id,
        quantity,
    )
    ticket = read.ticket
    # Each insert below writes the order and its order:created in one statement, so
    # the event is built first, from what is known before the order exists.
    if ticket.general_admission:
        _check_standing(await _standing(session, user_id, ticket_id, rules), rules)
        # Units first, under the new order's id: a buyer who finds too few writes no
        # order (nor event), and the rollback frees what it claimed.
        created = _order_to_create(read, user_id, quantity, rules)
        claimed = await repository.claim_units(
            session, ticket_id=ticket.id, order_id=created.id, quantity=quantity
        )
        if claimed < quantity:
            raise NotEnoughTicketsLeft()
        return await repository.insert_unit_order(session, created=created, ticket=ticket)
    if read.taken_against is not None:
        # Held by another order since the glance: refused from the read alone, the
        # buyer's own rules first (as below).
        _check_standing(read.taken_against, rules)
        raise TicketAlreadyReserved(field="ticketId")
    # No separate "is it free?" query: the insert itself decides concurrent buyers,
    # and checks the buyer's cap and cool-down in the same statement; it records the
    # event only if it wrote the order.
    seat = await repository.insert_reserving_order(
        session,
        created=_order_to_create(read, user_id, quantity, rules),
        ticket=ticket,
        max_open=rules.max_open,
        cooldown=rules.reorder_cooldown,
    )
    if seat is None:
        # Refused: the buyer's own rules say why if they refused, else the seat is
        # held. Still under the buyer's lock, so their standing is unchanged.
        _check_standing(await _standing(session, user_id, ticket_id, rules), rules)
        raise TicketAlreadyReserved(field="ticketId")
    return seat


def _order_to_create(
    read: repository.TicketToOrder, user_id: UUID, quantity: int, rules: HoldRules
) -> OrderCreated:
    """The order:created of the order the buyer is about to get (a new id), built before
    it is written: every field is known then. It expires a window after ``read.now``,
    the transaction's ``now()`` (the same in every statement of a transaction): the
    database's clock, shared by every replica, not this process's."""
    ticket = read.ticket
    return _created(
        order_id=uuid4(),
        user_id=user_id,
        expires_at=read.now + rules.window,
        ticket_id=ticket.id,
        price_cents=ticket.price_cents,
        general_admission=ticket.general_admission,
        quantity=quantity,
    )


def _orderable(
    read: repository.TicketToOrder | None, user_id: UUID, quantity: int
) -> repository.TicketToOrder:
    """``read``, unless it found no ticket, or one the buyer may not order (or not
    ``quantity`` of)."""
    if read is None:
        raise TicketNotFound(field="ticketId")
    ticket = read.ticket
    if ticket.withdrawn:
        raise ListingWithdrawn(field="ticketId")
    if ticket.seller_id == user_id:
        raise OwnTicket(field="ticketId")
    if not ticket.general_admission and quantity != 1:
        raise QuantityOfSeat()
    return read


async def _standing(
    session: AsyncSession, user_id: UUID, ticket_id: UUID, rules: HoldRules
) -> repository.Standing:
    return await repository.standing_of_buyer(
        session, user_id=user_id, ticket_id=ticket_id, cooldown=rules.reorder_cooldown
    )


def _check_standing(standing: repository.Standing, rules: HoldRules) -> None:
    """429 when the buyer is cooling down after an order of this ticket was cancelled,
    or holds as many open orders as they may (in that order)."""
    if standing.last_cancelled is not None:
        left = standing.last_cancelled + rules.reorder_cooldown - standing.now
        if left > timedelta(0):
            raise ReorderCoolingDown(retry_after=_whole_seconds(left))
    if standing.open_orders >= rules.max_open:
        # The earliest a hold can end by itself; paying or cancelling one ends it sooner.
        # An order past its expiry is being cancelled: a second is enough then.
        first_ends = (standing.earliest_expiry or standing.now) - standing.now
        raise TooManyOpenOrders(held=standing.open_orders, retry_after=_whole_seconds(first_ends))


def _whole_seconds(duration: timedelta) -> int:
    """A ``Retry-After``: whole seconds, rounded up, at least one."""
    return max(1, math.ceil(duration.total_seconds()))


async def order_of_user(session: AsyncSession, *, user_id: UUID, order_id: UUID) -> Order:
    order = await repository.order_of_user(session, order_id, user_id)
    if order is None:
        raise OrderNotFound()
    return order


async def orders_of_user(session: AsyncSession, *, user_id: UUID) -> Sequence[Order]:
    return await repository.orders_of_user(session, user_id)


async def cancel_order(session: AsyncSession, *, user_id: UUID, order_id: UUID) -> None:
    cancelled = await repository.cancel_order(
        session, order_id, user_id, reason=CancelReason.CANCELLED
    )
    if cancelled is not None:
        await _cancelled([cancelled], session)
        return
    order = await repository.order_of_user(session, order_id, user_id)
    if order is None:
        raise OrderNotFound()
    if order.status == OrderStatus.COMPLETE:
        raise OrderComplete()
    # Already cancelled (perhaps by a concurrent request): a no-op, and no second event.


async def expire_order(session: AsyncSession, *, order_id: UUID) -> Order | None:
    """The order's time to pay ran out: cancel it unless it is complete (or cancelled).

    The cancelled order, or None when nothing changed. A repeated expiration
    finds the order cancelled and publishes nothing a second time.
    """
    cancelled = await repository.cancel_order(session, order_id, reason=CancelReason.EXPIRED)
    if cancelled is not None:
        await _cancelled([cancelled], session)
        return cancelled
    if await repository.order_by_id(session, order_id) is None:
        logger.warning("expiration of an unknown order", extra={"order_id": str(order_id)})
    return None


async def complete_order(session: AsyncSession, *, order_id: UUID) -> Order | None:
    """The order was paid: mark it complete, issue its admission and publish
    order:completed, together. A cancelled order stays cancelled.

    The completed order, or None when it was not payable (already complete: a
    redelivered payment:created publishes nothing again; or cancelled: payments
    refunds a charge that raced the cancellation).
    """
    completed = await repository.complete_order(session, order_id)
    if completed is not None:
        await repository.issue_admission(session, completed)
        await outbox.record(
            session,
            OrderCompleted(
                id=completed.id,
                version=completed.version,
                user_id=completed.user_id,
                ticket=PricedTicketRef(
                    id=completed.ticket_id,
                    price=from_cents(completed.price_cents),
                    general_admission=completed.general_admission,
                ),
                quantity=completed.quantity,
            ),
        )
    else:
        order = await repository.order_by_id(session, order_id)
        logger.info(
            "payment for an order that is not payable",
            extra={"order_id": str(order_id), "status": order.status if order else None},
        )
    return completed


async def refund_order(
    session: AsyncSession, *, user_id: UUID, order_id: UUID, window: timedelta
) -> Order:
    """The buyer takes their money back: cancel the complete order (reason ``refunded``),
    void its admission and publish order:cancelled, in one transaction.

    Under the order's row lock, so a completion, cancel or withdrawal of it waits;
    the admission is voided by a conditional UPDATE of its row, which a check-in
    takes too, so a refund and a scan never both succeed (docs/concurrency.md).
    A second refund finds the order refunded and changes nothing.
    """
    order = await repository.lock_order_of_user(session, order_id, user_id)
    if order is None:
        raise OrderNotFound()
    if order.status is OrderStatus.CANCELLED and order.reason is CancelReason.REFUNDED:
        return await order_of_user(session, user_id=user_id, order_id=order_id)
    if order.status is not OrderStatus.COMPLETE:
        raise RefundOfUnpaidOrder()
    voided = await repository.void_unused_admission(session, order_id, issued_after=window)
    if voided is None:
        unused = await repository.admission_of_order(session, order_id)
        if unused is not None and unused.checked_in_at is not None:
            raise RefundAfterCheckIn()
        raise RefundPeriodEnded()
    refunded = await repository.cancel_complete_order(
        session, order_id, reason=CancelReason.REFUNDED
    )
    # The row lock held since the read above: the order is still complete.
    assert refunded is not None
    await _cancelled([refunded], session)
    return await order_of_user(session, user_id=user_id, order_id=order_id)


async def cancel_orders_of_withdrawn_ticket(session: AsyncSession, *, ticket_id: UUID) -> int:
    """The seller withdrew the ticket: cancel every order that still holds it (one that
    raced the withdrawal, even paid), void its admission, publish each order:cancelled
    with reason ``withdrawn`` (payments refunds a charge). How many were cancelled."""
    cancelled = await repository.cancel_orders_holding(
        session, ticket_id, reason=CancelReason.WITHDRAWN
    )
    if cancelled:
        await repository.void_admissions(session, [order.id for order in cancelled])
    await _cancelled(cancelled, session)
    return len(cancelled)


@dataclass(frozen=True)
class CheckIn:
    """A scan's outcome: the order (with ticket and admission) and whether this scan
    admitted it (``first``) or found it admitted already."""

    order: Order
    admission: Admission
    first: bool


# A scan that raced a change it could not see yet reads again; two more tries are
# more than any interleaving needs (each failed try saw a committed change).
_CHECK_IN_TRIES = 3


async def check_in(
    session: AsyncSession,
    *,
    codes: AdmissionCodes,
    code: str,
    seller_id: UUID,
    email: str,
) -> CheckIn:
    """Admit the code's ticket at the door, once: its seller only, while the order is
    complete and the admission neither voided nor checked in already."""
    ref = codes.read(code)
    if ref is None:
        raise InvalidAdmissionCode(field="code")
    for _ in range(_CHECK_IN_TRIES):
        admitted = await repository.check_in(
            session,
            order_id=ref.order_id,
            ticket_id=ref.ticket_id,
            seller_id=seller_id,
            email=email,
        )
        order = await repository.order_with_admission(session, ref.order_id)
        if order is None or order.ticket_id != ref.ticket_id:
            raise InvalidAdmissionCode(field="code")
        if admitted is not None:
            return CheckIn(order=order, admission=admitted, first=True)
        # Why not, in the order the contract gives: only the seller learns anything.
        if order.ticket.seller_id != seller_id:
            raise NotTheSeller()
        issued = order.admission
        if order.status is not OrderStatus.COMPLETE or issued is None or issued.voided_at:
            raise AdmissionVoided(_voided_because(order))
        if issued.checked_in_at is not None:
            return CheckIn(order=order, admission=issued, first=False)
    raise InvalidAdmissionCode(field="code")


def _voided_because(order: Order) -> str:
    """``refunded``, ``withdrawn`` or ``cancelled`` (an expired or unpaid order never
    had a code that admitted)."""
    reason = order.reason
    if reason in (CancelReason.REFUNDED, CancelReason.WITHDRAWN):
        return reason.value
    return CancelReason.CANCELLED.value


async def reannounce_orders(session: AsyncSession, order_ids: Sequence[UUID]) -> int:
    """Publish again, through the outbox, the events that brought each order to its state.

    Every order gets its order:created (version 0, as first published) and a
    cancelled one its order:cancelled too, with the reason it was cancelled for
    (a refund is re-announced as a refund): enough for any consumer to rebuild what
    it knows of the order from nothing. order:completed is not re-announced: it is a
    fact that notifications mails, not replicated state. Consumers apply events by
    version, so one that has them already changes nothing, except to put right what
    disagrees with them (tickets' lock). The operator's repair when a consumer lost or gave up on an
    order event (docs/concurrency.md). Returns how many events were recorded.
    """
    recorded = 0
    for order in await repository.orders_by_ids(session, order_ids):
        await outbox.record(session, order_created(order))
        recorded += 1
        if order.status == OrderStatus.CANCELLED:
            await _record_cancelled(session, order)
            recorded += 1
    return recorded


def order_created(order: Order) -> OrderCreated:
    """The order's order:created: the order as it was at version 0, when it was created."""
    return _created(
        order_id=order.id,
        user_id=order.user_id,
        expires_at=order.expires_at,
        ticket_id=order.ticket_id,
        price_cents=order.price_cents,
        general_admission=order.general_admission,
        quantity=order.quantity,
    )


def _created(
    *,
    order_id: UUID,
    user_id: UUID,
    expires_at: datetime,
    ticket_id: UUID,
    price_cents: int,
    general_admission: bool,
    quantity: int,
) -> OrderCreated:
    """The order:created of an order of these values: version 0, status created, and
    the price the order is accepted at."""
    return OrderCreated(
        id=order_id,
        version=0,
        status=OrderStatus.CREATED,
        user_id=user_id,
        expires_at=expires_at,
        ticket=PricedTicketRef(
            id=ticket_id, price=from_cents(price_cents), general_admission=general_admission
        ),
        quantity=quantity,
    )


async def _cancelled(orders: Sequence[Order], session: AsyncSession) -> None:
    """What follows the conditional UPDATE that cancelled ``orders``, in its transaction:
    their units go back on sale and each order:cancelled is recorded. That UPDATE is
    won by one transition of an order only, so units are freed once."""
    with_units = [order.id for order in orders if order.general_admission]
    if with_units:
        await repository.release_units(session, with_units)
    for order in orders:
        await _record_cancelled(session, order)


async def _record_cancelled(session: AsyncSession, order: Order) -> None:
    await outbox.record(
        session,
        OrderCancelled(
            id=order.id,
            version=order.version,
            ticket=TicketRef(id=order.ticket_id, general_admission=order.general_admission),
            reason=order.reason or CancelReason.CANCELLED,
            quantity=order.quantity,
        ),
    )
