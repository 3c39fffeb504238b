"""Notifications refuses a mail configuration that could never send."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from ticketing_notifications.settings import Settings

REQUIRED = {"ENVIRONMENT": "test", "DATABASE_URL": "postgresql://localhost/ticketing_notifications"}


@pytest.mark.parametrize(
    "values",
    [
        {"SMTP_USERNAME": "mailer"},
        {"SMTP_PASSWORD": "secret"},
        {"MAIL_FROM": "Ticketing"},
        {"SITE_URL": "tickets.example.com"},
    ],
    ids=["username-alone", "password-alone", "sender-without-address", "site-without-scheme"],
)
def test_an_incomplete_account_or_a_malformed_address_is_refused(values: dict[str, str]) -> None:
    Settings.model_validate(REQUIRED)  # valid without them
    with pytest.raises(ValidationError) as refused:
        Settings.model_validate({**REQUIRED, **values})
    assert {error["loc"][0] for error in refused.value.errors() if error["loc"]} <= set(values)


def test_the_sender_and_the_site_are_read_from_their_settings() -> None:
    settings = Settings.model_validate(
        {
            **REQUIRED,
            "MAIL_FROM": "Box Office <office@tickets.example.com>",
            "SITE_URL": "https://tickets.example.com/",
        }
    )
    assert settings.sender.domain == "tickets.example.com"
    assert settings.sender.display_name == "Box Office"
    assert settings.site_url == "https://tickets.example.com"
