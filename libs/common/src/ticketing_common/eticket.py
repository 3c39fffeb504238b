"""E-tickets: the QR code of an admission code, and the PDF a buyer keeps.

One rendering for everything that shows a ticket: the web pages (inline SVG, the PDF
download) and the confirmation mail (the PDF attached). The QR code is made by
``segno`` and the PDF by ``fpdf2``; the code itself comes from
``ticketing_common.admission``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

import segno
from fpdf import FPDF

# Medium error correction: a phone screen with a crack or glare still scans.
_ERROR = "m"


def qr_svg(code: str, *, scale: int = 4) -> str:
    """The QR code as an inline ``<svg>`` element (no XML declaration), dark on white."""
    return str(segno.make(code, error=_ERROR).svg_inline(scale=scale, dark="#000", light="#fff"))


def qr_png(code: str, *, scale: int = 8) -> bytes:
    """The QR code as PNG bytes."""
    out = io.BytesIO()
    segno.make(code, error=_ERROR).save(out, kind="png", scale=scale, border=4)
    return out.getvalue()


@dataclass(frozen=True)
class ETicket:
    """What a printed ticket shows."""

    title: str
    price: Decimal
    order_id: UUID
    ticket_id: UUID
    code: str
    issued_at: datetime | None = None
    # A general-admission order's units: one code lets this many people in, together.
    quantity: int = 1


def pdf(ticket: ETicket, *, qr: bytes | None = None) -> bytes:
    """A one-page A6 PDF (105 by 148 mm): the title, price (times the units of a
    general-admission order), order id, QR code and how many people it admits.

    ``qr``: the code's ``qr_png``, when the caller has rendered it already (a mail that
    also shows it inline): rendering it costs about as much as the rest of the PDF."""
    document = FPDF(format=(105, 148))  # A6, in mm
    document.set_title(f"Ticket: {ticket.title}")
    document.set_creator("Ticketing")
    document.set_auto_page_break(auto=False)
    document.add_page()
    width = document.epw
    document.set_font("Helvetica", "B", 15)
    document.multi_cell(width, 7, _latin1(ticket.title), align="C", new_x="LMARGIN")
    document.ln(2)
    document.set_font("Helvetica", "", 11)
    document.cell(width, 6, _amount(ticket), align="C", new_x="LMARGIN", new_y="NEXT")
    side = min(width, 70.0)
    png = qr if qr is not None else qr_png(ticket.code)
    document.image(io.BytesIO(png), x=(document.w - side) / 2, w=side, h=side)
    document.ln(2)
    document.set_font("Helvetica", "", 7)
    document.cell(width, 4, f"Order {ticket.order_id}", align="C", new_x="LMARGIN", new_y="NEXT")
    document.cell(width, 4, f"Ticket {ticket.ticket_id}", align="C", new_x="LMARGIN", new_y="NEXT")
    if ticket.issued_at is not None:
        issued = ticket.issued_at.strftime("%Y-%m-%d %H:%M UTC")
        document.cell(width, 4, f"Issued {issued}", align="C", new_x="LMARGIN", new_y="NEXT")
    document.set_font("Helvetica", "I", 7)
    admits = "one person" if ticket.quantity == 1 else f"{ticket.quantity} people together"
    document.multi_cell(
        width, 4, f"Show this code at the door. It admits {admits}, once.", align="C"
    )
    return bytes(document.output())


def _amount(ticket: ETicket) -> str:
    """``$40.00 USD``, or for several units ``3 x $40.00 = $120.00 USD``."""
    if ticket.quantity == 1:
        return f"${ticket.price:,.2f} USD"
    total = ticket.price * ticket.quantity
    return f"{ticket.quantity} x ${ticket.price:,.2f} = ${total:,.2f} USD"


def _latin1(text: str) -> str:
    """The core PDF fonts speak Latin-1: anything else becomes '?', never an error."""
    return text.encode("latin-1", "replace").decode("latin-1")
