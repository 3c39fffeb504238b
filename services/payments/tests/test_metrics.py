"""Payments' metrics (docs/operations.md#metrics): payment requests by outcome and payments by
status, read from /metrics as Prometheus would."""

from __future__ import annotations

import httpx

from ticketing_common.testing.metrics import scraped, value

from .conftest import Orders, Users, pay

ATTEMPTS = "ticketing_payments_attempts_total"


async def test_payments_are_counted_by_outcome_and_by_status(
    client: httpx.AsyncClient, orders: Orders, users: Users
) -> None:
    paid = await orders.placed()
    declined_order = await orders.placed()

    succeeded = await pay(client, users, paid, "tok_visa")
    again = await pay(client, users, paid, "tok_visa")
    declined = await pay(client, users, declined_order, "tok_chargeDeclined")
    samples = await scraped(client)

    assert (succeeded.status_code, again.status_code, declined.status_code) == (201, 409, 402)
    assert value(samples, ATTEMPTS, outcome="succeeded") == 1
    assert value(samples, ATTEMPTS, outcome="declined") == 1
    assert value(samples, ATTEMPTS, outcome="rejected") == 1
    assert value(samples, ATTEMPTS, outcome="failed") == 0
    assert value(samples, "ticketing_payments", status="succeeded") == 1
    assert value(samples, "ticketing_payments", status="failed") == 1
    assert value(samples, "ticketing_payments", status="refunded") == 0
