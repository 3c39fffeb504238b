"""Input checks every service shares, so bad input is a 4xx and never a 500."""

from __future__ import annotations

import unicodedata
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator

from ticketing_common.errors import AppError

# Control characters (Cc: NUL, the other C0 and C1 controls, DEL; tab and newlines
# among them) and the line and paragraph separators: none belongs in a one-line field.
_NOT_IN_A_LINE = frozenset({"Cc", "Zl", "Zp"})


def encodable(value: str) -> str:
    """Refuse text that cannot be stored: JSON can carry lone surrogates (``"\\ud800"``)
    that would otherwise fail later, in a hasher or the database driver, as a 500."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError("Must be valid Unicode text") from error
    return value


def single_line(value: str) -> str:
    """Refuse what a one-line text field never holds and what would break later: a NUL
    is refused by PostgreSQL (a 500), other controls garble pages and logs. Checked
    before any trimming, so a control character is refused wherever it stands."""
    encodable(value)
    if any(unicodedata.category(char) in _NOT_IN_A_LINE for char in value):
        raise ValueError("Must not contain control characters")
    return value


# The type of every free-text input field that holds one line (titles, emails,
# new passwords, tokens); a field's own rules (trimming, length) come after it.
SingleLine = Annotated[str, AfterValidator(single_line)]


def path_id(raw: str, not_found: AppError) -> UUID:
    """A malformed id in a path names nothing: 404, never a 400 or a 500 (SPEC §1)."""
    try:
        return UUID(raw)
    except ValueError:
        raise not_found from None
