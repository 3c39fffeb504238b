"""Tickets' domain errors: small subclasses of the shared error types."""

from __future__ import annotations

from ticketing_common.errors import Conflict, Forbidden, NotFound


class TicketNotFound(NotFound):
    message = "Ticket not found"


class NotTheSeller(Forbidden):
    message = "Only the seller can edit a ticket"


class TicketReserved(Conflict):
    message = "Ticket is reserved"
