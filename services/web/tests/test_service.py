"""The page rules: safe sign-in targets, money, and what an order page offers when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import uuid4

import pytest

from ticketing_common.events.contracts import OrderStatus
from ticketing_web.schemas import OrderRead, OrderTicketRead
from ticketing_web.service import OrderState, format_money, order_view, safe_next


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/orders", "/orders"),
        ("/tickets/new?x=1", "/tickets/new?x=1"),
        (None, "/"),
        ("", "/"),
        ("orders", "/"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("/ok\r\nSet-Cookie: x=1", "/"),
    ],
)
def test_only_same_site_paths_are_followed_after_sign_in(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


@pytest.mark.parametrize(
    ("amount", "text"),
    [("20", "$20.00"), ("0.5", "$0.50"), ("1234.5", "$1,234.50"), ("1000000", "$1,000,000.00")],
)
def test_prices_read_as_dollars_and_cents(amount: str, text: str) -> None:
    assert format_money(Decimal(amount)) == text


def _order(status: OrderStatus, expires_in: float, now: datetime) -> OrderRead:
    return OrderRead(
        id=uuid4(),
        user_id=uuid4(),
        status=status,
        expires_at=now + timedelta(seconds=expires_in),
        version=0,
        ticket=OrderTicketRead(id=uuid4(), title="Gig", price=Decimal("10")),
    )


def test_an_order_within_its_window_is_payable_with_the_seconds_left() -> None:
    now = datetime.now(UTC)
    view = order_view(_order(OrderStatus.CREATED, 61.2, now), now)
    assert view.state is OrderState.PAYABLE
    assert view.seconds_left == 62
    assert view.time_left == "1:02"


def test_an_order_past_its_window_reads_expired_before_it_is_cancelled() -> None:
    now = datetime.now(UTC)
    assert order_view(_order(OrderStatus.CREATED, -1, now), now).state is OrderState.EXPIRED
    assert order_view(_order(OrderStatus.CANCELLED, -1, now), now).state is OrderState.EXPIRED
    assert order_view(_order(OrderStatus.CANCELLED, 60, now), now).state is OrderState.CANCELLED
    assert order_view(_order(OrderStatus.COMPLETE, -1, now), now).state is OrderState.COMPLETE
