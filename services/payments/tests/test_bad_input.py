"""Bad input to POST /api/payments is a 400 naming the field that charges and records
nothing (SPEC §3, limits)."""

from __future__ import annotations

import httpx
import pytest

from ticketing_common.db import Database

from .conftest import Orders, Users, payment_count


@pytest.mark.parametrize(
    "token",
    ["tok_visa\x00", "tok_\x00visa", "tok_visa\n", "\x1btok_visa", "tok_visa\x85"],
    ids=["trailing-nul", "nul", "newline", "escape", "c1"],
)
async def test_a_card_token_with_a_control_character_is_400_and_charges_nothing(
    client: httpx.AsyncClient, orders: Orders, users: Users, db: Database, token: str
) -> None:
    order = await orders.placed()

    response = await client.post(
        "/api/payments",
        json={"token": token, "orderId": str(order.id)},
        headers=users.headers(order.user_id),
    )

    assert response.status_code == 400
    assert response.json() == {
        "errors": [{"message": "Must not contain control characters", "field": "token"}]
    }
    assert await payment_count(db) == 0


async def test_a_lone_surrogate_in_the_token_is_400_not_500(
    client: httpx.AsyncClient, orders: Orders, users: Users, db: Database
) -> None:
    order = await orders.placed()

    response = await client.post(
        "/api/payments",
        content=b'{"token": "tok_\\ud800", "orderId": "%s"}' % str(order.id).encode(),
        headers={**users.headers(order.user_id), "content-type": "application/json"},
    )

    assert response.status_code == 400
    assert [error.get("field") for error in response.json()["errors"]] == ["token"]
    assert await payment_count(db) == 0
