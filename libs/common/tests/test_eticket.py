"""E-tickets: the QR code decodes to the admission code; the PDF holds what it should.

Read back with independent libraries: ``zxing-cpp`` decodes the QR code from the
PNG (and from the image inside the PDF), ``pypdf`` extracts the PDF's text.
"""

from __future__ import annotations

import io
from dataclasses import replace
from decimal import Decimal
from uuid import uuid4

import zxingcpp
from PIL import Image
from pypdf import PdfReader

from ticketing_common.admission import admission_key, issue
from ticketing_common.eticket import ETicket, pdf, qr_png, qr_svg

CODE = issue(admission_key("k" * 32), order_id=uuid4(), ticket_id=uuid4())


def _decoded(image: Image.Image) -> list[str]:
    return [result.text for result in zxingcpp.read_barcodes(image)]


def test_the_png_decodes_to_the_code() -> None:
    png = qr_png(CODE)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert _decoded(Image.open(io.BytesIO(png))) == [CODE]


def test_the_svg_is_an_inline_element() -> None:
    svg = qr_svg(CODE)
    assert svg.startswith("<svg")
    assert svg.endswith("</svg>")


def test_the_pdf_carries_title_price_order_and_a_qr_code_that_scans() -> None:
    order_id, ticket_id = uuid4(), uuid4()
    document = pdf(
        ETicket(
            title="Concert \u2013 \u00dcn\u00efcode \u2713",
            price=Decimal("1234.5"),
            order_id=order_id,
            ticket_id=ticket_id,
            code=CODE,
        )
    )
    assert document.startswith(b"%PDF-")
    reader = PdfReader(io.BytesIO(document))
    assert len(reader.pages) == 1
    text = reader.pages[0].extract_text()
    assert "Concert" in text
    assert "$1,234.50 USD" in text
    assert str(order_id) in text
    [image] = reader.pages[0].images
    assert image.image is not None
    assert _decoded(image.image) == [CODE]


def test_the_pdf_of_a_general_admission_order_shows_its_units_and_whom_it_admits() -> None:
    ticket = ETicket(
        title="Standing", price=Decimal("40"), order_id=uuid4(), ticket_id=uuid4(), code=CODE
    )
    one = PdfReader(io.BytesIO(pdf(ticket))).pages[0].extract_text()
    three = PdfReader(io.BytesIO(pdf(replace(ticket, quantity=3)))).pages[0].extract_text()
    assert "$40.00 USD" in one
    assert "admits one person, once" in " ".join(one.split())
    assert "3 x $40.00 = $120.00 USD" in three
    assert "admits 3 people together, once" in " ".join(three.split())
