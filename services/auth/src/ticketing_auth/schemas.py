"""Auth's request and response bodies.

Emails are trimmed, lower-cased and validated here, so everything past the
route sees one spelling of an address. Every string must be encodable as
UTF-8: JSON can carry lone surrogates (``"\\ud800"``) that would otherwise fail
later, in the password hasher or the database driver, as a 500.

An email and a new password are one line of text (the shared ``SingleLine``):
no control characters, which no password field lets anyone type, while any other
Unicode is allowed in a password. A password given to sign in is only bounded:
it is compared, never stored, and one chosen before the rule must still work.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, ConfigDict, StringConstraints

from ticketing_auth.models import EMAIL_MAX_LENGTH
from ticketing_common.schemas import CamelModel
from ticketing_common.validation import SingleLine, encodable

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128


def _valid_email(value: str) -> str:
    try:
        checked = validate_email(value, check_deliverability=False)
    except EmailNotValidError as error:
        raise ValueError("Email must be valid") from error
    return checked.normalized.lower()


def _password_length(value: str) -> str:
    if not PASSWORD_MIN_LENGTH <= len(value) <= PASSWORD_MAX_LENGTH:
        raise ValueError(
            f"Password must be between {PASSWORD_MIN_LENGTH} and {PASSWORD_MAX_LENGTH} characters"
        )
    return value


def _password_present(value: str) -> str:
    if not value:
        raise ValueError("Password is required")
    if len(value) > PASSWORD_MAX_LENGTH:
        raise ValueError(f"Password must be at most {PASSWORD_MAX_LENGTH} characters")
    return value


def _email_length(value: str) -> str:
    if len(value) > EMAIL_MAX_LENGTH:
        raise ValueError(f"Email must be at most {EMAIL_MAX_LENGTH} characters")
    return value


Email = Annotated[
    SingleLine,
    StringConstraints(strip_whitespace=True, to_lower=True),
    AfterValidator(_email_length),
    AfterValidator(_valid_email),
]
NewPassword = Annotated[SingleLine, AfterValidator(_password_length)]
# Sign-in does not re-apply the sign-up rules (a wrong password is simply wrong),
# but it bounds the length so nobody makes the server hash megabytes.
GivenPassword = Annotated[str, AfterValidator(encodable), AfterValidator(_password_present)]


class SignUp(CamelModel):
    email: Email
    password: NewPassword


class SignIn(CamelModel):
    email: Email
    password: GivenPassword


class UserRead(CamelModel):
    model_config = ConfigDict(from_attributes=True)

    id: UUID
    email: str


class CurrentUserRead(CamelModel):
    current_user: UserRead | None


class SignedOutEverywhere(CamelModel):
    revoked_sessions: int
