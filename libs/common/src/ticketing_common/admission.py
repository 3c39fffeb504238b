"""Admission codes: what an e-ticket's QR code carries, and how a gate reads it.

A code names one order and its ticket and is signed with a key derived from the
shared ``JWT_KEY``, so nobody without the key can make one (unforgeable) or guess one
(the 128-bit signature is as unguessable as a random token). It holds no personal
data: two UUIDs and the signature, base64url, about 90 characters::

    TA1.<order id>.<ticket id>.<signature>

The code is deterministic: orders (which checks tickets in) and notifications (which
mails them) compute the same one without sharing any stored secret, and the code
cannot be replayed for another order or ticket. Whether it still admits anyone
(the order complete, not refunded or withdrawn, not yet checked in) is decided by
the owner of admissions, orders, in its database; the code only proves who issued it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from uuid import UUID

PREFIX = "TA1"
"""The code's version: a new signing scheme would get a new prefix."""
_SIGNATURE_BYTES = 16


@dataclass(frozen=True)
class AdmissionRef:
    """What a valid code names."""

    order_id: UUID
    ticket_id: UUID


def admission_key(jwt_key: str) -> bytes:
    """The codes' own key, derived from the shared secret: a code is never a session."""
    return hmac.new(jwt_key.encode(), b"ticketing admission codes v1", hashlib.sha256).digest()


@dataclass(frozen=True)
class AdmissionCodes:
    """Issues and reads codes with the key derived from the shared secret: what orders
    (which admits) and notifications (which mails the e-ticket) both hold."""

    key: bytes

    @classmethod
    def of_secret(cls, jwt_key: str) -> AdmissionCodes:
        return cls(admission_key(jwt_key))

    def issue(self, *, order_id: UUID, ticket_id: UUID) -> str:
        return issue(self.key, order_id=order_id, ticket_id=ticket_id)

    def read(self, code: str) -> AdmissionRef | None:
        return read(self.key, code)


def issue(key: bytes, *, order_id: UUID, ticket_id: UUID) -> str:
    """The code for ``order_id``'s admission with ``ticket_id``."""
    body = f"{PREFIX}.{_b64(order_id.bytes)}.{_b64(ticket_id.bytes)}"
    return f"{body}.{_b64(_sign(key, body))}"


def read(key: bytes, code: str) -> AdmissionRef | None:
    """What ``code`` names, or None when it is malformed, altered or forged."""
    parts = code.strip().split(".")
    if len(parts) != 4 or parts[0] != PREFIX:
        return None
    body = ".".join(parts[:3])
    try:
        order_id = UUID(bytes=_unb64(parts[1]))
        ticket_id = UUID(bytes=_unb64(parts[2]))
        signature = _unb64(parts[3])
    except ValueError:
        return None
    if not hmac.compare_digest(signature, _sign(key, body)):
        return None
    return AdmissionRef(order_id=order_id, ticket_id=ticket_id)


def _sign(key: bytes, body: str) -> bytes:
    return hmac.new(key, body.encode(), hashlib.sha256).digest()[:_SIGNATURE_BYTES]


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    if not text or len(text) > 64 or not text.isascii():
        raise ValueError("not base64url")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as error:
        raise ValueError("not base64url") from error
    # One spelling per code: base64's unused low bits of the last character must be zero,
    # or an altered character would read as the same bytes.
    if _b64(raw) != text:
        raise ValueError("not canonical base64url")
    return raw
