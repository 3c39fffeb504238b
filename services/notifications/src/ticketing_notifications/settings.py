"""Notifications' settings: the shared database and bus settings plus the SMTP server,
the sender and the site that links in mails point to.

The only place the notifications service reads its environment (``UPPER_SNAKE`` names).
"""

from __future__ import annotations

from email.headerregistry import Address
from email.utils import parseaddr
from typing import Self

from pydantic import Field, SecretStr, field_validator, model_validator

from ticketing_common.settings import EventServiceSettings


class Settings(EventServiceSettings):
    # The SMTP server every mail is handed to (``ticketing up`` runs a local catcher).
    SMTP_HOST: str = "127.0.0.1"
    SMTP_PORT: int = Field(default=25, ge=1, le=65535)
    # Both or neither: a server that requires authentication.
    SMTP_USERNAME: str | None = None
    SMTP_PASSWORD: SecretStr | None = None
    # STARTTLS after connecting (a submission server on 587); off for a local catcher.
    SMTP_STARTTLS: bool = False
    SMTP_TIMEOUT_SECONDS: float = Field(default=30, gt=0)
    # The sender, ``Name <address>`` or a bare address. Its domain ends every Message-ID.
    MAIL_FROM: str = "Ticketing <tickets@ticketing.test>"
    # Where the links in mails point: the public site (the gateway).
    SITE_URL: str = Field(default="http://127.0.0.1:8000", pattern=r"^https?://[^/\s]+/?$")

    @field_validator("MAIL_FROM")
    @classmethod
    def _an_address(cls, value: str) -> str:
        _, address = parseaddr(value)
        if "@" not in address:
            raise ValueError("MAIL_FROM must be an e-mail address, optionally with a name")
        return value

    @model_validator(mode="after")
    def _account_complete(self) -> Self:
        if (self.SMTP_USERNAME is None) != (self.SMTP_PASSWORD is None):
            raise ValueError("SMTP_USERNAME and SMTP_PASSWORD go together: set both or neither")
        return self

    @property
    def sender(self) -> Address:
        name, address = parseaddr(self.MAIL_FROM)
        username, domain = address.rsplit("@", 1)
        return Address(display_name=name, username=username, domain=domain)

    @property
    def site_url(self) -> str:
        return self.SITE_URL.rstrip("/")
