"""The shared body base: camelCase on the wire, either spelling in, unknown fields ignored."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID, uuid4

import pytest
from pydantic import ValidationError

from ticketing_common.events.contracts import PricedTicketRef
from ticketing_common.schemas import CamelModel


class OrderLine(CamelModel):
    order_id: UUID
    unit_price: Decimal


def test_a_body_is_written_in_camel_case() -> None:
    order_id = uuid4()
    line = OrderLine(order_id=order_id, unit_price=Decimal("2.50"))

    assert line.model_dump(mode="json", by_alias=True) == {
        "orderId": str(order_id),
        "unitPrice": "2.50",
    }


def test_a_body_is_read_in_camel_case_and_by_field_name() -> None:
    order_id = uuid4()

    from_the_wire = OrderLine.model_validate({"orderId": str(order_id), "unitPrice": "2.50"})
    from_code = OrderLine.model_validate({"order_id": str(order_id), "unit_price": "2.50"})

    assert from_the_wire == from_code == OrderLine(order_id=order_id, unit_price=Decimal("2.50"))


def test_a_field_the_reader_does_not_know_is_ignored() -> None:
    raw = f'{{"orderId": "{uuid4()}", "unitPrice": 1, "couponCode": "NEW"}}'

    line = OrderLine.model_validate_json(raw)

    assert "couponCode" not in line.model_dump(by_alias=True)
    assert line.model_extra is None


def test_an_event_payload_is_a_camel_case_body_that_cannot_change() -> None:
    ref = PricedTicketRef.model_validate({"id": str(uuid4()), "price": 5, "sellerName": "x"})

    with pytest.raises(ValidationError, match="frozen"):
        ref.price = Decimal("1.00")  # type: ignore[misc]
