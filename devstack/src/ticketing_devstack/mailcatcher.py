"""The local SMTP catcher of ``ticketing up``: keeps every mail the system sends, shows it.

An SMTP server (aiosmtpd) on 127.0.0.1 accepts any message for anyone and delivers
nothing: each message is kept in memory and written to ``<data-dir>/mail`` (one
``.eml`` file and its envelope), so the mailbox survives a restart of the catcher.
An HTTP server beside it shows the mailbox:

- ``GET /``: the caught mail, newest first (time, from, to, subject);
- ``GET /messages/{id}``: one message, its HTML part in a sandboxed ``<iframe>``
  (no scripts, no access to the page), its text part, its attachments;
- ``GET /api/messages``, ``GET /api/messages/{id}``,
  ``GET /api/messages/{id}/parts/{index}`` (an attachment or inline image) and
  ``GET /api/messages/{id}/raw``: the same for tests and tools, as JSON and bytes.

Run as ``python -m ticketing_devstack.mailcatcher --smtp-port N --http-port M --store DIR``;
tests use ``Mailbox`` and ``MailboxHandler`` with aiosmtpd's ``Controller`` in-process.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from urllib.parse import quote
from uuid import uuid4

import uvicorn
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI, HTTPException
from fastapi.responses import HTMLResponse, Response

HEALTH_PATH = "/health"
# Kept in memory and listed; the oldest are forgotten (their files stay on disk).
MAX_MESSAGES = 1000


@dataclass(frozen=True)
class Part:
    """A part of a message that is not its text or HTML body: an attachment or an image."""

    index: int
    filename: str | None
    content_type: str
    content_id: str | None
    content: bytes


@dataclass(frozen=True)
class CaughtMail:
    id: str
    received_at: datetime
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = BytesParser(policy=policy.default).parsebytes(self.raw)
        assert isinstance(parsed, EmailMessage)
        return parsed

    def body(self, subtype: str) -> str | None:
        part = self.message.get_body(preferencelist=(subtype,))
        if part is None or part.get_content_type() != f"text/{subtype}":
            return None
        content = part.get_content()
        return content if isinstance(content, str) else None

    def parts(self) -> list[Part]:
        """Every leaf that is not a text or HTML body, numbered in the message's order."""
        message = self.message
        bodies = {
            id(body)
            for body in (message.get_body(("plain",)), message.get_body(("html",)))
            if body is not None
        }
        found: list[Part] = []
        for part in message.walk():
            if part.is_multipart() or id(part) in bodies:
                continue
            payload = part.get_payload(decode=True)
            content_id = part.get("Content-ID")
            found.append(
                Part(
                    index=len(found),
                    filename=part.get_filename(),
                    content_type=part.get_content_type(),
                    content_id=str(content_id).strip("<>") if content_id else None,
                    content=payload if isinstance(payload, bytes) else b"",
                )
            )
        return found

    def summary(self) -> dict[str, Any]:
        message = self.message
        return {
            "id": self.id,
            "receivedAt": self.received_at.isoformat(),
            "from": str(message.get("From", self.mail_from)),
            "to": list(self.rcpt_tos),
            "subject": str(message.get("Subject", "")),
            "messageId": str(message.get("Message-ID", "")),
        }

    def detail(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "envelopeFrom": self.mail_from,
            "text": self.body("plain"),
            "html": self.body("html"),
            "parts": [
                {
                    "index": part.index,
                    "filename": part.filename,
                    "contentType": part.content_type,
                    "contentId": part.content_id,
                    "size": len(part.content),
                    "url": f"/api/messages/{self.id}/parts/{part.index}",
                }
                for part in self.parts()
            ],
        }


class Mailbox:
    """The caught mail, in arrival order; written to ``store`` (if any) as it arrives.

    Thread-safe: in tests the SMTP server runs in aiosmtpd's thread and the test reads.
    """

    def __init__(self, store: Path | None = None) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._messages: list[CaughtMail] = []
        if store is not None:
            store.mkdir(parents=True, exist_ok=True)
            self._messages = self._load(store)[-MAX_MESSAGES:]

    @staticmethod
    def _load(store: Path) -> list[CaughtMail]:
        loaded = []
        for meta_path in store.glob("*.json"):
            raw_path = meta_path.with_suffix(".eml")
            try:
                meta = json.loads(meta_path.read_text())
                loaded.append(
                    CaughtMail(
                        id=meta["id"],
                        received_at=datetime.fromisoformat(meta["receivedAt"]),
                        mail_from=meta["from"],
                        rcpt_tos=tuple(meta["to"]),
                        raw=raw_path.read_bytes(),
                    )
                )
            except (OSError, ValueError, KeyError):
                continue  # half-written when the catcher died: not a message
        return sorted(loaded, key=lambda mail: mail.received_at)

    def add(self, mail_from: str, rcpt_tos: Sequence[str], raw: bytes) -> CaughtMail:
        mail = CaughtMail(
            id=uuid4().hex,
            received_at=datetime.now(UTC),
            mail_from=mail_from,
            rcpt_tos=tuple(rcpt_tos),
            raw=raw,
        )
        if self.store is not None:
            # The message first, its envelope last: a file pair without its .json is
            # skipped on loading, never half-read.
            self.store.joinpath(f"{mail.id}.eml").write_bytes(raw)
            meta = {
                "id": mail.id,
                "receivedAt": mail.received_at.isoformat(),
                "from": mail_from,
                "to": list(rcpt_tos),
            }
            self.store.joinpath(f"{mail.id}.json").write_text(json.dumps(meta))
        with self._lock:
            self._messages.append(mail)
            del self._messages[:-MAX_MESSAGES]
        return mail

    def all(self) -> list[CaughtMail]:
        """Every message kept, oldest first."""
        with self._lock:
            return list(self._messages)

    def get(self, mail_id: str) -> CaughtMail | None:
        return next((mail for mail in self.all() if mail.id == mail_id), None)

    def to(self, address: str) -> list[CaughtMail]:
        """The messages for one recipient, oldest first."""
        wanted = address.lower()
        return [mail for mail in self.all() if wanted in (to.lower() for to in mail.rcpt_tos)]


class MailboxHandler:
    """aiosmtpd's handler: accept every message into the mailbox."""

    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        self.mailbox.add(envelope.mail_from or "", list(envelope.rcpt_tos), raw)
        return "250 Message accepted for delivery"


# -- the pages -------------------------------------------------------------------------

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#18181b}
table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:.4rem .6rem;border-bottom:1px solid #e4e4e7}
iframe{width:100%;height:36rem;border:1px solid #e4e4e7}
pre{white-space:pre-wrap;background:#f4f4f5;padding:1rem}
a{color:#4f46e5}
"""


def _page(title: str, body: str) -> HTMLResponse:
    return HTMLResponse(
        f"<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


def _list_page(mails: Sequence[CaughtMail]) -> HTMLResponse:
    rows = "".join(
        "<tr><td>{time}</td><td>{sender}</td><td>{to}</td>"
        '<td><a href="/messages/{id}">{subject}</a></td></tr>'.format(
            time=html.escape(mail.received_at.strftime("%Y-%m-%d %H:%M:%S UTC")),
            sender=html.escape(summary["from"]),
            to=html.escape(", ".join(summary["to"])),
            id=mail.id,
            subject=html.escape(summary["subject"] or "(no subject)"),
        )
        for mail in reversed(mails)
        for summary in (mail.summary(),)
    )
    body = (
        f"<h1>Mail ({len(mails)})</h1><p>Every mail the system sent, newest first. "
        "Nothing leaves this machine.</p>"
        "<table><thead><tr><th>time</th><th>from</th><th>to</th><th>subject</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )
    return _page("Mail", body)


def _message_page(mail: CaughtMail) -> HTMLResponse:
    summary, parts = mail.summary(), mail.parts()
    shown = mail.body("html")
    if shown is not None:
        # Inline images (cid:) point to their parts here.
        for part in parts:
            if part.content_id:
                url = f"/api/messages/{mail.id}/parts/{part.index}"
                shown = shown.replace(f"cid:{part.content_id}", url)
    text = mail.body("plain")
    links = "".join(
        '<li><a href="/api/messages/{id}/parts/{index}" download="{name}">{name}</a> '
        "({type}, {size} bytes)</li>".format(
            id=mail.id,
            index=part.index,
            name=html.escape(part.filename or f"part-{part.index}"),
            type=html.escape(part.content_type),
            size=len(part.content),
        )
        for part in parts
    )
    body = (
        '<p><a href="/">&larr; all mail</a></p>'
        f"<h1>{html.escape(summary['subject'] or '(no subject)')}</h1>"
        f"<p>From {html.escape(summary['from'])} to {html.escape(', '.join(summary['to']))}, "
        f"{html.escape(summary['receivedAt'])} "
        f'(<a href="/api/messages/{mail.id}/raw">raw</a>)</p>'
    )
    if shown is not None:
        # sandbox without allow-scripts or allow-same-origin: the mail's HTML can neither
        # run code nor reach this page.
        body += f'<h2>HTML</h2><iframe sandbox srcdoc="{html.escape(shown)}"></iframe>'
    if text is not None:
        body += f"<h2>Text</h2><pre>{html.escape(text)}</pre>"
    if links:
        body += f"<h2>Attachments</h2><ul>{links}</ul>"
    return _page(summary["subject"] or "Mail", body)


def create_app(mailbox: Mailbox) -> FastAPI:
    app = FastAPI(title="Mail catcher", docs_url=None, redoc_url=None, openapi_url=None)

    def found(mail_id: str) -> CaughtMail:
        mail = mailbox.get(mail_id)
        if mail is None:
            raise HTTPException(404, "No such message")
        return mail

    @app.get(HEALTH_PATH)
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/", response_class=HTMLResponse)
    async def index() -> HTMLResponse:
        return _list_page(mailbox.all())

    @app.get("/messages/{mail_id}", response_class=HTMLResponse)
    async def page(mail_id: str) -> HTMLResponse:
        return _message_page(found(mail_id))

    @app.get("/api/messages")
    async def messages() -> list[dict[str, Any]]:
        return [mail.summary() for mail in reversed(mailbox.all())]

    @app.get("/api/messages/{mail_id}")
    async def message(mail_id: str) -> dict[str, Any]:
        return found(mail_id).detail()

    @app.get("/api/messages/{mail_id}/raw")
    async def raw(mail_id: str) -> Response:
        return Response(found(mail_id).raw, media_type="message/rfc822")

    @app.get("/api/messages/{mail_id}/parts/{index}")
    async def part(mail_id: str, index: int) -> Response:
        parts = found(mail_id).parts()
        if not 0 <= index < len(parts):
            raise HTTPException(404, "No such part")
        chosen = parts[index]
        headers = {"X-Content-Type-Options": "nosniff"}
        if chosen.filename:
            # RFC 6266's extended form: any name, never a header of its own making.
            headers["Content-Disposition"] = (
                f"attachment; filename*=UTF-8''{quote(chosen.filename)}"
            )
        return Response(chosen.content, media_type=chosen.content_type, headers=headers)

    return app


async def serve(host: str, smtp_port: int, http_port: int, store: Path) -> None:
    """Both servers until SIGTERM or SIGINT (uvicorn's handlers end ``serve``)."""
    mailbox = Mailbox(store)
    loop = asyncio.get_running_loop()
    smtp = await loop.create_server(
        lambda: SMTP(MailboxHandler(mailbox), hostname=host), host=host, port=smtp_port
    )
    config = uvicorn.Config(
        create_app(mailbox), host=host, port=http_port, log_level="warning", access_log=False
    )
    try:
        await uvicorn.Server(config).serve()
    finally:
        smtp.close()
        await smtp.wait_closed()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m ticketing_devstack.mailcatcher")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--smtp-port", type=int, required=True)
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--store", type=Path, required=True, help="where caught mail is kept")
    args = parser.parse_args(argv)
    print(
        f"Catching mail on smtp://{args.host}:{args.smtp_port}, "
        f"shown on http://{args.host}:{args.http_port}",
        flush=True,
    )
    asyncio.run(serve(args.host, args.smtp_port, args.http_port, args.store))


if __name__ == "__main__":
    main()
