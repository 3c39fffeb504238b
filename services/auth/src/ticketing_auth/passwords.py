"""Password hashing with argon2id (argon2-cffi), off the event loop.

Hashing is deliberately CPU- and memory-hard (tens of milliseconds), so every
call runs in a worker thread: on the event loop it would stall every other
request of the process.
"""

from __future__ import annotations

import asyncio
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError


class Passwords:
    """Hashes and verifies passwords; also holds the dummy hash for unknown emails."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        # argon2-cffi's defaults are argon2id with RFC 9106's low-memory profile.
        self.hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        try:
            return await asyncio.to_thread(self.hasher.verify, password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with other (older, weaker) parameters than ours."""
        try:
            return self.hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True

    async def dummy_hash(self) -> str:
        """A hash with our parameters that no password matches.

        Sign-in verifies against it when the email is unknown, so that case costs
        the same time as a wrong password and timing does not reveal who has an
        account. Made once (at start-up, see :meth:`prepare`).
        """
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(secrets.token_urlsafe(32))
        return self._dummy_hash

    async def prepare(self) -> None:
        """Make the dummy hash before serving, so the first unknown email is not slower."""
        await self.dummy_hash()
