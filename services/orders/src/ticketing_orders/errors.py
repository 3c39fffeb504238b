"""Orders' domain errors: small subclasses of the shared error types."""

from __future__ import annotations

from ticketing_common.errors import BadRequest, Conflict, Forbidden, NotFound, TooManyRequests


class TicketNotFound(NotFound):
    message = "Ticket not found"


class OwnTicket(BadRequest):
    message = "You cannot buy your own ticket"


class TicketAlreadyReserved(Conflict):
    message = "Ticket is already reserved"


class NotEnoughTicketsLeft(Conflict):
    """Fewer free units of the general-admission listing than the buyer asked for."""

    def __init__(self) -> None:
        super().__init__("Not enough tickets left", field="quantity")


class QuantityOfSeat(BadRequest):
    def __init__(self) -> None:
        super().__init__("This ticket is sold one seat at a time", field="quantity")


class QuantityNotAllowed(BadRequest):
    """More units in one order than ``MAX_UNITS_PER_ORDER``."""

    def __init__(self, most: int) -> None:
        super().__init__(f"You can order at most {most} tickets at once", field="quantity")


class ListingWithdrawn(Conflict):
    """The ticket's seller withdrew it (ticket:withdrawn): nobody may order it any more."""

    message = "This ticket was withdrawn by its seller"


class OrderNotFound(NotFound):
    message = "Order not found"


class OrderComplete(Conflict):
    message = "A complete order cannot be cancelled"


class RefundOfUnpaidOrder(Conflict):
    message = "Only a paid order can be refunded"


class RefundAfterCheckIn(Conflict):
    message = "This ticket was already used at the door"


class RefundPeriodEnded(Conflict):
    message = "The refund period for this order has ended"


class InvalidAdmissionCode(BadRequest):
    """Malformed, altered or forged: not a code orders issued."""

    message = "Not a valid ticket code"


class AdmissionVoided(BadRequest):
    """The code's order is not complete (refunded, withdrawn or cancelled): it admits nobody."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"This ticket was {reason} and does not admit", field="code")


class NotTheSeller(Forbidden):
    message = "Only the seller of this ticket can check it in"


class TooManyOpenOrders(TooManyRequests):
    """The buyer holds as many open orders as they may; retry once one of them ends."""

    def __init__(self, *, held: int, retry_after: int) -> None:
        tickets = "1 ticket" if held == 1 else f"{held} tickets"
        super().__init__(
            f"You already hold {tickets}. Pay for or cancel one before reserving another.",
            retry_after=retry_after,
        )


class ReorderCoolingDown(TooManyRequests):
    """The buyer's own order of this ticket was cancelled or expired a moment ago."""

    def __init__(self, *, retry_after: int) -> None:
        super().__init__(
            "Your last order for this ticket was cancelled or expired a moment ago, so it "
            f"is open to other buyers first. You can reserve it again in {_duration(retry_after)}.",
            retry_after=retry_after,
        )


def _duration(seconds: int) -> str:
    """``45 seconds``, ``1 minute``, ``3 minutes`` (rounded up: never sooner than true)."""
    if seconds < 60:
        return "1 second" if seconds == 1 else f"{seconds} seconds"
    minutes = -(-seconds // 60)
    return "1 minute" if minutes == 1 else f"{minutes} minutes"
