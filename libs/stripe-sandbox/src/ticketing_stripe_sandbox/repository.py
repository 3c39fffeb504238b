"""The sandbox's state: one ``Account`` per secret key, as Stripe keeps one account's
objects apart from another's.

Objects live in memory, in insertion-ordered dicts (lists are newest first).
``lock(id)`` gives the asyncio lock of one object: an operation that reads,
decides and writes an object (confirm a PaymentIntent, refund a charge) holds it,
so two concurrent confirms can never both charge. Idempotency records live here
too (see ``idempotency.py``).

With a state file (``store.py``) every change is also written through: an
operation reports each object it creates (``add_*``) or changes (``save``) to the
request's unit of work (``changes()``), and ``commit`` writes them, with the
response saved for the request's idempotency key, in one transaction before the
response is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from ticketing_stripe_sandbox.errors import resource_missing
from ticketing_stripe_sandbox.forms import Json
from ticketing_stripe_sandbox.models import Charge, PaymentIntent, PaymentMethod, Refund
from ticketing_stripe_sandbox.store import AccountState, SavedKey, StateFile, Stored, account_id

# The objects the current request created or changed, by id (see ``Account.changes``).
_changed: ContextVar[dict[str, Stored] | None] = ContextVar("sandbox_changes", default=None)


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
    created: float  # wall-clock time, so that it means the same after a restart
    response: SavedResponse | None = None


@dataclass
class Account:
    # Where the account is written through to, and under which id; None: memory only.
    state: StateFile | None = None
    state_id: str = ""
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
        self.save(intent)

    def add_payment_method(self, method: PaymentMethod) -> None:
        self.payment_methods[method.id] = method
        self.save(method)

    def add_charge(self, charge: Charge) -> None:
        self.charges[charge.id] = charge
        self.save(charge)

    def add_refund(self, refund: Refund) -> None:
        self.refunds[refund.id] = refund
        self.save(refund)

    def save(self, obj: Stored) -> None:
        """Note that ``obj`` was created or changed: the request's commit writes it."""
        changed = _changed.get()
        if changed is not None:
            changed[obj.id] = obj  # written as it is at commit time
        elif self.state is not None:
            self.state.commit(self.state_id, [obj], None)

    @contextmanager
    def changes(self) -> Iterator[None]:
        """The unit of work of one request: what it changes is written by ``commit``."""
        token = _changed.set({})
        try:
            yield
        finally:
            _changed.reset(token)

    def commit(self, key: str | None = None, record: IdempotencyRecord | None = None) -> None:
        """Write the request's changes, and the response saved for its key, at once."""
        changed = _changed.get()
        objects = list(changed.values()) if changed is not None else []
        if changed is not None:
            changed.clear()
        if self.state is None or (not objects and record is None):
            return
        saved = None
        if key is not None and record is not None and record.response is not None:
            response = record.response
            saved = SavedKey(
                key,
                record.endpoint,
                record.fingerprint,
                record.created,
                response.status,
                response.body,
                response.request_id,
            )
        self.state.commit(self.state_id, objects, saved)

    def forget_keys(self, keys: Iterable[str]) -> None:
        keys = list(keys)
        for key in keys:
            del self.idempotency[key]
        if self.state is not None and keys:
            self.state.forget_keys(self.state_id, keys)

    def restore(self, saved: AccountState) -> None:
        """Fill the account from its state file (at start-up)."""
        tables: dict[type[Stored], dict[str, Stored]] = {
            PaymentIntent: self.payment_intents,  # type: ignore[dict-item]
            PaymentMethod: self.payment_methods,  # type: ignore[dict-item]
            Charge: self.charges,  # type: ignore[dict-item]
            Refund: self.refunds,  # type: ignore[dict-item]
        }
        for obj in saved.objects:
            tables[type(obj)][obj.id] = obj
        for key in saved.keys:
            response = SavedResponse(key.status, key.body, key.request_id)
            self.idempotency[key.key] = IdempotencyRecord(
                key.endpoint, key.fingerprint, key.created, response
            )

    def lookup(self, object_id: str) -> dict[str, Json] | None:
        """Any object by id, as JSON (for ``expand``)."""
        for table in (self.payment_intents, self.charges, self.refunds, self.payment_methods):
            found = table.get(object_id)
            if found is not None:
                return found.to_json()
        return None


@dataclass
class Sandbox:
    """Everything the sandbox knows, per account (a digest of its secret key)."""

    accounts: dict[str, Account] = field(default_factory=dict)
    state: StateFile | None = None

    @classmethod
    def open(cls, path: Path) -> Sandbox:
        """The sandbox saved in ``path`` (created if missing), written through from now on."""
        state = StateFile(path)
        sandbox = cls(state=state)
        for name, saved in state.load().items():
            sandbox.accounts[name] = Account(state=state, state_id=name)
            sandbox.accounts[name].restore(saved)
        return sandbox

    def account(self, secret_key: str) -> Account:
        name = account_id(secret_key)
        found = self.accounts.get(name)
        if found is None:
            found = self.accounts[name] = Account(state=self.state, state_id=name)
        return found

    def close(self) -> None:
        if self.state is not None:
            self.state.close()
