"""Orders' domain errors: small subclasses of the shared error types."""

from __future__ import annotations

from ticketing_common.errors import BadRequest, Conflict, NotFound


class TicketNotFound(NotFound):
    message = "Ticket not found"


class OwnTicket(BadRequest):
    message = "You cannot buy your own ticket"


class TicketAlreadyReserved(Conflict):
    message = "Ticket is already reserved"


class OrderNotFound(NotFound):
    message = "Order not found"


class OrderComplete(Conflict):
    message = "A complete order cannot be cancelled"
