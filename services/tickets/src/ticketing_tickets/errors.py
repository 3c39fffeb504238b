"""Tickets' domain errors: small subclasses of the shared error types."""

from __future__ import annotations

from ticketing_common.errors import Conflict, Forbidden, NotFound


class TicketNotFound(NotFound):
    message = "Ticket not found"


class NotTheSeller(Forbidden):
    message = "Only the seller can edit a ticket"


class NotTheSellerToWithdraw(Forbidden):
    message = "Only the seller can withdraw a ticket"


class TicketReserved(Conflict):
    message = "Ticket is reserved"


class TicketSold(Conflict):
    message = "Ticket is sold"


class ListingWithdrawn(Conflict):
    """The seller withdrew the ticket (named apart from the ticket:withdrawn event)."""

    message = "Ticket is withdrawn"
