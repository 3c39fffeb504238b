"""Input checks every service shares, so bad input is a 4xx and never a 500."""

from __future__ import annotations

from uuid import UUID

from ticketing_common.errors import AppError


def encodable(value: str) -> str:
    """Refuse text that cannot be stored: JSON can carry lone surrogates (``"\\ud800"``)
    that would otherwise fail later, in a hasher or the database driver, as a 500."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError("Must be valid Unicode text") from error
    return value


def path_id(raw: str, not_found: AppError) -> UUID:
    """A malformed id in a path names nothing: 404, never a 400 or a 500 (SPEC §1)."""
    try:
        return UUID(raw)
    except ValueError:
        raise not_found from None
