"""The SMTP client: hands a finished message to the configured server (aiosmtplib).

One connection per message: mail is rare next to events, and a connection kept open
would only be dropped by the server while idle. What a failure means for the event
is told apart here: the server away or answering 4xx is an outage (wait and retry),
a 5xx refusal is the message's own problem.
"""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib

from ticketing_notifications.settings import Settings

TRANSIENT_SMTP_CODES = range(400, 500)


class Mailer:
    """Sends messages through ``SMTP_HOST:SMTP_PORT``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, message: EmailMessage) -> None:
        """Send, or raise; returns once the server accepted the message for delivery."""
        settings = self.settings
        password = settings.SMTP_PASSWORD.get_secret_value() if settings.SMTP_PASSWORD else None
        await aiosmtplib.send(
            message,
            hostname=settings.SMTP_HOST,
            port=settings.SMTP_PORT,
            username=settings.SMTP_USERNAME,
            password=password,
            # True or False, never aiosmtplib's None ("whenever the server offers it"):
            # whether the connection is encrypted is the operator's decision.
            start_tls=settings.SMTP_STARTTLS,
            timeout=settings.SMTP_TIMEOUT_SECONDS,
        )


def is_outage(error: BaseException) -> bool:
    """Whether a failed send should wait for the server rather than count as a failure."""
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return error.code in TRANSIENT_SMTP_CODES
    return isinstance(
        error,
        aiosmtplib.SMTPConnectError
        | aiosmtplib.SMTPServerDisconnected
        | aiosmtplib.SMTPTimeoutError
        | OSError,
    )
