"""The sandbox's state file: every object and saved idempotency response, in SQLite.

Stripe forgets nothing when a process restarts, so neither does the sandbox when it
is given ``--state-file``: a charge taken before a crash must still be there for the
recovery code to find. Memory stays the working copy (reads never touch the
file); each request's changes — the objects it created or changed and the response
saved for its idempotency key — are written in one SQLite transaction before the
response leaves, so a SIGKILL loses nothing that was acknowledged and never keeps
half a request. WAL with ``synchronous=NORMAL``: a commit is in the operating
system's hands when it returns, which survives the death of the process (only a
power cut could lose the last commits). The file is locked exclusively while open,
so two sandboxes can never write diverging histories into one file.

Accounts are stored under a digest of their secret key, never the key itself.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import TypeAlias

from ticketing_stripe_sandbox.cards import Decline, TestCard
from ticketing_stripe_sandbox.forms import Json
from ticketing_stripe_sandbox.models import Charge, PaymentIntent, PaymentMethod, Refund

Stored: TypeAlias = PaymentIntent | PaymentMethod | Charge | Refund

KINDS: dict[type[Stored], str] = {
    PaymentIntent: "payment_intent",
    PaymentMethod: "payment_method",
    Charge: "charge",
    Refund: "refund",
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    account TEXT NOT NULL,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (account, id)
);
CREATE TABLE IF NOT EXISTS idempotency (
    account TEXT NOT NULL,
    key TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created REAL NOT NULL,
    status INTEGER NOT NULL,
    body BLOB NOT NULL,
    request_id TEXT NOT NULL,
    PRIMARY KEY (account, key)
);
"""


def account_id(secret_key: str) -> str:
    """How an account is named in the file: a digest, so no key is written to disk."""
    return hashlib.sha256(secret_key.encode()).hexdigest()


@dataclasses.dataclass(frozen=True)
class SavedKey:
    """An idempotency key's first request and the response saved for it."""

    key: str
    endpoint: str
    fingerprint: tuple[tuple[str, str], ...]
    created: float
    status: int
    body: bytes
    request_id: str


@dataclasses.dataclass
class AccountState:
    """What the file holds for one account, objects in the order they were created."""

    objects: list[Stored] = dataclasses.field(default_factory=list)
    keys: list[SavedKey] = dataclasses.field(default_factory=list)


class StateFile:
    """One open state file; close it when the sandbox stops."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit mode: transactions are the explicit BEGIN ... COMMIT below.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=1)
        try:
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            # The first write takes the exclusive lock, held until close.
            self._db.executescript(SCHEMA)
        except sqlite3.OperationalError as error:
            self._db.close()
            raise RuntimeError(f"{path} is in use by another Stripe sandbox") from error

    def load(self) -> dict[str, AccountState]:
        """Every account's objects and saved keys, by account id."""
        accounts: dict[str, AccountState] = {}
        rows = self._db.execute("SELECT account, kind, data FROM objects ORDER BY rowid")
        for account, kind, data in rows:
            state = accounts.setdefault(account, AccountState())
            state.objects.append(_decode(kind, json.loads(data)))
        rows = self._db.execute(
            "SELECT account, key, endpoint, fingerprint, created, status, body, request_id "
            "FROM idempotency ORDER BY rowid"
        )
        for account, key, endpoint, fingerprint, created, status, body, request_id in rows:
            pairs = tuple((name, value) for name, value in json.loads(fingerprint))
            state = accounts.setdefault(account, AccountState())
            state.keys.append(
                SavedKey(key, endpoint, pairs, created, status, bytes(body), request_id)
            )
        return accounts

    def commit(self, account: str, objects: Iterable[Stored], key: SavedKey | None) -> None:
        """Write one request's changes, all or nothing."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.executemany(
                "INSERT INTO objects (account, id, kind, data) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (account, id) DO UPDATE SET data = excluded.data",
                [
                    (account, obj.id, KINDS[type(obj)], json.dumps(dataclasses.asdict(obj)))
                    for obj in objects
                ],
            )
            if key is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO idempotency "
                    "(account, key, endpoint, fingerprint, created, status, body, request_id) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        account,
                        key.key,
                        key.endpoint,
                        json.dumps(key.fingerprint),
                        key.created,
                        key.status,
                        key.body,
                        key.request_id,
                    ),
                )
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def forget_keys(self, account: str, keys: Iterable[str]) -> None:
        self._db.executemany(
            "DELETE FROM idempotency WHERE account = ? AND key = ?", [(account, k) for k in keys]
        )

    def close(self) -> None:
        self._db.close()


def _decode(kind: str, data: dict[str, Json]) -> Stored:
    """An object from its ``dataclasses.asdict`` form."""
    fields = dict(data)
    if kind == "payment_intent":
        return PaymentIntent(**fields)  # type: ignore[arg-type]
    if kind == "payment_method":
        return _payment_method(fields)
    if kind == "charge":
        failure = fields.pop("failure")
        method = fields.pop("payment_method")
        assert isinstance(method, dict)
        return Charge(
            **fields,  # type: ignore[arg-type]
            payment_method=_payment_method(method),
            failure=Decline(**failure) if isinstance(failure, dict) else None,  # type: ignore[arg-type]
        )
    if kind == "refund":
        return Refund(**fields)  # type: ignore[arg-type]
    raise ValueError(f"unknown object kind in the state file: {kind}")


def _payment_method(data: dict[str, Json]) -> PaymentMethod:
    fields = dict(data)
    card = fields.pop("card")
    assert isinstance(card, dict)
    card = dict(card)
    decline = card.pop("decline")
    return PaymentMethod(
        **fields,  # type: ignore[arg-type]
        card=TestCard(
            **card,  # type: ignore[arg-type]
            decline=Decline(**decline) if isinstance(decline, dict) else None,  # type: ignore[arg-type]
        ),
    )
