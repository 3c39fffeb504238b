"""Auth's domain errors: small subclasses of the shared error types."""

from __future__ import annotations

from ticketing_common.errors import Conflict, NotAuthorized, TooManyRequests


class EmailInUse(Conflict):
    message = "Email in use"


class InvalidCredentials(NotAuthorized):
    # One message for an unknown email and a wrong password: no user enumeration.
    message = "Invalid credentials"


class TooManyFailedSignins(TooManyRequests):
    message = "Too many failed sign-ins, try again later"


class SessionEnded(NotAuthorized):
    # A token of a signed-out, expired or unknown session, or none at all: sign in again.
    message = "Session ended, please sign in again"
