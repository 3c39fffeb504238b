"""``POST /api/checkins``: the seller admits a complete order's e-ticket at the door,
exactly once (docs/after-purchase.md; docs/concurrency.md, "Check-in")."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from uuid import UUID, uuid4

import httpx

from ticketing_common import admission
from ticketing_orders.settings import Settings

from .conftest import Purchases, Users, email_of

GATES = 20


async def _scan(client: httpx.AsyncClient, users: Users, who: UUID, code: str) -> httpx.Response:
    return await client.post("/api/checkins", json={"code": code}, headers=users.headers(who))


async def test_the_seller_admits_a_ticket_once_and_every_later_scan_is_409_with_the_first(
    client: httpx.AsyncClient, purchases: Purchases, users: Users
) -> None:
    seller = uuid4()
    order = await purchases.paid(seller=seller)
    code = order["admission"]["code"]

    first = await _scan(client, users, seller, code)
    again = await _scan(client, users, seller, code)

    assert first.status_code == 201, first.text
    admitted = first.json()
    assert admitted["orderId"] == order["id"]
    assert admitted["ticket"] == order["ticket"]
    assert admitted["checkedInBy"] == email_of(seller)
    at = f"{datetime.fromisoformat(admitted['checkedInAt']).astimezone(UTC):%H:%M:%S}"
    assert again.status_code == 409, again.text
    assert again.json() == {
        "errors": [{"message": f"Already admitted at {at} UTC by {email_of(seller)}"}],
        "admission": {"checkedInAt": admitted["checkedInAt"], "checkedInBy": email_of(seller)},
    }
    read = await client.get(
        f"/api/orders/{order['id']}", headers=users.headers(UUID(order["userId"]))
    )
    assert read.json()["admission"] == {"code": code, "checkedInAt": admitted["checkedInAt"]}


async def test_only_the_signed_in_seller_may_check_a_ticket_in(
    client: httpx.AsyncClient, purchases: Purchases, users: Users
) -> None:
    seller = uuid4()
    order = await purchases.paid(seller=seller)
    code = order["admission"]["code"]

    anonymous = await client.post("/api/checkins", json={"code": code})
    buyer = await _scan(client, users, UUID(order["userId"]), code)
    stranger = await _scan(client, users, uuid4(), code)

    assert anonymous.status_code == 401
    for refused in (buyer, stranger):
        assert refused.status_code == 403
        assert refused.json()["errors"][0]["message"] == (
            "Only the seller of this ticket can check it in"
        )
    # Refusing them admitted nobody: the seller's scan is still the first.
    assert (await _scan(client, users, seller, code)).status_code == 201


async def test_forged_altered_and_malformed_codes_are_400(
    client: httpx.AsyncClient, purchases: Purchases, users: Users, settings: Settings
) -> None:
    seller = uuid4()
    order = await purchases.paid(seller=seller)
    code: str = order["admission"]["code"]
    order_id, ticket_id = UUID(order["id"]), UUID(order["ticket"]["id"])
    forged = admission.issue(
        admission.admission_key("not our key"), order_id=order_id, ticket_id=ticket_id
    )
    # Another order's id under this code's signature.
    other = admission.issue(
        admission.admission_key(settings.JWT_KEY), order_id=uuid4(), ticket_id=ticket_id
    )
    spliced = ".".join([*other.split(".")[:2], *code.split(".")[2:]])
    flipped = code[:-1] + ("A" if code[-1] != "A" else "B")

    for bad in (forged, spliced, flipped, "TA1.nothing", "hello"):
        response = await _scan(client, users, seller, bad)
        assert response.status_code == 400, bad
        assert response.json()["errors"] == [
            {"message": "Not a valid ticket code", "field": "code"}
        ]
    assert (await _scan(client, users, seller, "")).status_code == 400
    assert (await _scan(client, users, seller, code)).status_code == 201


async def test_a_refunded_ticket_is_refused_with_its_reason(
    client: httpx.AsyncClient, purchases: Purchases, users: Users
) -> None:
    seller = uuid4()
    order = await purchases.paid(seller=seller)
    buyer = UUID(order["userId"])
    refund = await client.post(f"/api/orders/{order['id']}/refund", headers=users.headers(buyer))
    assert refund.status_code == 200, refund.text

    response = await _scan(client, users, seller, order["admission"]["code"])

    assert response.status_code == 400
    assert response.json()["errors"] == [
        {"message": "This ticket was refunded and does not admit", "field": "code"}
    ]


async def test_gates_scanning_one_code_at_once_admit_it_exactly_once(
    client: httpx.AsyncClient, purchases: Purchases, users: Users
) -> None:
    seller = uuid4()
    order = await purchases.paid(seller=seller)
    code = order["admission"]["code"]

    scans = await asyncio.gather(*(_scan(client, users, seller, code) for _ in range(GATES)))

    statuses = sorted(response.status_code for response in scans)
    assert statuses == [201] + [409] * (GATES - 1)
    [admitted] = [response.json() for response in scans if response.status_code == 201]
    # Every refused gate names the one admission: the same time, the same scanner.
    assert {
        (r.json()["admission"]["checkedInAt"], r.json()["admission"]["checkedInBy"])
        for r in scans
        if r.status_code == 409
    } == {(admitted["checkedInAt"], email_of(seller))}
