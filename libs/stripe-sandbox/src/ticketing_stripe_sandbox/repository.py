"""The sandbox's in-memory state: one ``Account`` per secret key, as Stripe keeps one
account's objects apart from another's.

Objects live in insertion-ordered dicts (lists are newest first). ``lock(id)``
gives the asyncio lock of one object: an operation that reads, decides and
writes an object (confirm a PaymentIntent, refund a charge) holds it, so two
concurrent confirms can never both charge. Idempotency records live here too
(see ``idempotency.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from ticketing_stripe_sandbox.errors import resource_missing
from ticketing_stripe_sandbox.forms import Json
from ticketing_stripe_sandbox.models import Charge, PaymentIntent, PaymentMethod, Refund


@dataclass
class SavedResponse:
    status: int
    body: bytes
    request_id: str


@dataclass
class IdempotencyRecord:
    """A key's first request: where it went, with what, and (once done) what it got."""

    endpoint: str
    fingerprint: tuple[tuple[str, str], ...]
    created: float
    response: SavedResponse | None = None


@dataclass
class Account:
    payment_intents: dict[str, PaymentIntent] = field(default_factory=dict)
    payment_methods: dict[str, PaymentMethod] = field(default_factory=dict)
    charges: dict[str, Charge] = field(default_factory=dict)
    refunds: dict[str, Refund] = field(default_factory=dict)
    idempotency: dict[str, IdempotencyRecord] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    @asynccontextmanager
    async def lock(self, object_id: str) -> AsyncIterator[None]:
        lock = self._locks.setdefault(object_id, asyncio.Lock())
        async with lock:
            yield

    def payment_intent(self, object_id: str, *, param: str = "id") -> PaymentIntent:
        found = self.payment_intents.get(object_id)
        if found is None:
            raise resource_missing("payment_intent", object_id, param=param)
        return found

    def charge(self, object_id: str, *, param: str = "id") -> Charge:
        found = self.charges.get(object_id)
        if found is None:
            raise resource_missing("charge", object_id, param=param)
        return found

    def refund(self, object_id: str, *, param: str = "id") -> Refund:
        found = self.refunds.get(object_id)
        if found is None:
            raise resource_missing("refund", object_id, param=param)
        return found

    def add_payment_intent(self, intent: PaymentIntent) -> None:
        self.payment_intents[intent.id] = intent

    def add_payment_method(self, method: PaymentMethod) -> None:
        self.payment_methods[method.id] = method

    def add_charge(self, charge: Charge) -> None:
        self.charges[charge.id] = charge

    def add_refund(self, refund: Refund) -> None:
        self.refunds[refund.id] = refund

    def lookup(self, object_id: str) -> dict[str, Json] | None:
        """Any object by id, as JSON (for ``expand``)."""
        for table in (self.payment_intents, self.charges, self.refunds, self.payment_methods):
            found = table.get(object_id)
            if found is not None:
                return found.to_json()
        return None


@dataclass
class Sandbox:
    """Everything the sandbox knows, per secret key."""

    accounts: dict[str, Account] = field(default_factory=dict)

    def account(self, secret_key: str) -> Account:
        return self.accounts.setdefault(secret_key, Account())
