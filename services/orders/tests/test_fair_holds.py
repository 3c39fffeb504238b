"""Fair holds (docs/security.md): a cap on one buyer's open orders that holds under
concurrency, the rate of order creation per buyer and per client, and a cool-down
before a buyer orders again a ticket of theirs that was cancelled or expired."""

from __future__ import annotations

import asyncio
from collections import Counter
from uuid import UUID, uuid4

import httpx
from sqlalchemy import func, select, text

from ticketing_common.db import Database
from ticketing_common.embedded import free_port
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import (
    Envelope,
    ExpirationComplete,
    OrderCreated,
    OrderStatus,
    PaymentCreated,
    TicketCreated,
)
from ticketing_common.testing import published, statements_of, wait_until
from ticketing_orders.models import Order
from ticketing_orders.throttle import PER_CLIENT_MESSAGE, PER_USER_MESSAGE

from .conftest import ServeOrders, Tickets, Users

SIMULTANEOUS = 50
DEFAULT_CAP = 4
CAP_MESSAGE = "You already hold {} tickets. Pay for or cancel one before reserving another."


def _message(response: httpx.Response) -> str:
    message: str = response.json()["errors"][0]["message"]
    return message


def _retry_after(response: httpx.Response) -> int:
    return int(response.headers["retry-after"])


async def _order(
    client: httpx.AsyncClient, users: Users, buyer: UUID, ticket: TicketCreated, **headers: str
) -> httpx.Response:
    return await client.post(
        "/api/orders",
        json={"ticketId": str(ticket.id)},
        headers={**users.headers(buyer), **headers},
    )


async def _open_orders(db: Database, buyer: UUID) -> int:
    open_statuses = [OrderStatus.CREATED.value, OrderStatus.AWAITING_PAYMENT.value]
    async with db.transaction() as session:
        count = await session.scalar(
            select(func.count())
            .select_from(Order)
            .where(Order.user_id == buyer, Order.status.in_(open_statuses))
        )
    return int(count or 0)


async def test_fifty_simultaneous_orders_of_one_buyer_on_fifty_tickets_hold_exactly_the_cap(
    serve_orders: ServeOrders, bus: EventBus, db: Database, users: Users
) -> None:
    # The conftest raises the rates, so only the cap can refuse these orders.
    async with serve_orders() as orders, orders.client() as client:
        tickets = Tickets(bus, db)
        listed = await asyncio.gather(*(tickets.listed() for _ in range(SIMULTANEOUS)))
        hoarder, other = uuid4(), uuid4()

        responses = await asyncio.gather(
            *(_order(client, users, hoarder, ticket) for ticket in listed)
        )

        statuses = Counter(response.status_code for response in responses)
        assert statuses == {201: DEFAULT_CAP, 429: SIMULTANEOUS - DEFAULT_CAP}, statuses
        refused = [response for response in responses if response.status_code == 429]
        assert {_message(response) for response in refused} == {CAP_MESSAGE.format(DEFAULT_CAP)}
        # Until the first hold expires (15 minutes) at most.
        assert all(1 <= _retry_after(response) <= 900 for response in refused)
        assert await _open_orders(db, hoarder) == DEFAULT_CAP
        events = await published(bus, OrderCreated, DEFAULT_CAP)
        assert {event.data.user_id for event in events} == {hoarder}

        # Another buyer is not held back by the hoarder's cap.
        held = {
            UUID(response.json()["ticket"]["id"]) for response in responses if response.is_success
        }
        free = next(ticket for ticket in listed if ticket.id not in held)
        assert (await _order(client, users, other, free)).status_code == 201


async def test_a_buyer_at_the_cap_may_order_again_once_a_hold_is_cancelled_or_paid(
    serve_orders: ServeOrders, bus: EventBus, db: Database, users: Users
) -> None:
    two_for_ten_minutes = {"MAX_OPEN_ORDERS_PER_USER": 2, "EXPIRATION_WINDOW_SECONDS": 600}
    async with serve_orders(**two_for_ten_minutes) as orders, orders.client() as client:
        tickets = Tickets(bus, db)
        first, second, third, fourth = [await tickets.listed() for _ in range(4)]
        buyer = uuid4()
        paid = (await _order(client, users, buyer, first)).json()["id"]
        cancelled = (await _order(client, users, buyer, second)).json()["id"]

        refused = await _order(client, users, buyer, third)
        assert refused.status_code == 429
        assert _message(refused) == CAP_MESSAGE.format(2)
        assert 1 <= _retry_after(refused) <= 600

        gone = await client.delete(f"/api/orders/{cancelled}", headers=users.headers(buyer))
        assert gone.status_code == 204
        assert (await _order(client, users, buyer, third)).status_code == 201
        assert (await _order(client, users, buyer, fourth)).status_code == 429

        payment = PaymentCreated(id=uuid4(), order_id=UUID(paid), stripe_id="pi_test")
        await bus.publish(Envelope.of(payment))

        async def completed() -> bool:
            return await _open_orders(db, buyer) == 1

        await wait_until(completed)
        assert (await _order(client, users, buyer, fourth)).status_code == 201
        assert await _open_orders(db, buyer) == 2


async def test_orders_beyond_the_buyers_rate_are_429_with_retry_after_and_others_go_on(
    serve_orders: ServeOrders, bus: EventBus, db: Database, users: Users
) -> None:
    async with serve_orders(ORDER_RATE_PER_USER="3/minute") as orders, orders.client() as client:
        tickets = Tickets(bus, db)
        listed = [await tickets.listed() for _ in range(5)]
        buyer, other = uuid4(), uuid4()
        for ticket in listed[:3]:
            assert (await _order(client, users, buyer, ticket)).status_code == 201

        refused = await _order(client, users, buyer, listed[3])

        assert refused.status_code == 429
        assert _message(refused) == PER_USER_MESSAGE
        assert 1 <= _retry_after(refused) <= 60
        assert await _open_orders(db, buyer) == 3
        assert (await _order(client, users, other, listed[3])).status_code == 201


async def test_orders_beyond_the_clients_rate_are_429_whoever_the_buyer_and_other_clients_go_on(
    serve_orders: ServeOrders, bus: EventBus, db: Database, users: Users
) -> None:
    behind_the_gateway = {"ORDER_RATE_PER_CLIENT": "3/minute", "TRUST_PROXY_HEADERS": True}
    async with serve_orders(**behind_the_gateway) as orders, orders.client() as client:
        tickets = Tickets(bus, db)
        listed = [await tickets.listed() for _ in range(5)]
        crowded = {"X-Forwarded-For": "203.0.113.7"}
        for ticket in listed[:3]:
            ordered = await _order(client, users, uuid4(), ticket, **crowded)
            assert ordered.status_code == 201

        refused = await _order(client, users, uuid4(), listed[3], **crowded)

        assert refused.status_code == 429
        assert _message(refused) == PER_CLIENT_MESSAGE
        assert 1 <= _retry_after(refused) <= 60
        elsewhere = {"X-Forwarded-For": "198.51.100.2"}
        assert (await _order(client, users, uuid4(), listed[3], **elsewhere)).status_code == 201


async def test_a_buyer_who_cancelled_waits_out_the_cooldown_for_that_ticket_only(
    serve_orders: ServeOrders, bus: EventBus, db: Database, users: Users
) -> None:
    async with serve_orders() as orders, orders.client() as client:
        tickets = Tickets(bus, db)
        ticket, another = await tickets.listed(), await tickets.listed()
        buyer = uuid4()
        order_id = (await _order(client, users, buyer, ticket)).json()["id"]
        await client.delete(f"/api/orders/{order_id}", headers=users.headers(buyer))

        again = await _order(client, users, buyer, ticket)

        assert again.status_code == 429
        assert "cancelled or expired a moment ago" in _message(again)
        assert "You can reserve it again in 3 minutes." in _message(again)
        assert 170 <= _retry_after(again) <= 180  # the default cool-down, 180 s
        # Any other ticket at once; the cancelled one is for the others meanwhile.
        assert (await _order(client, users, buyer, another)).status_code == 201
        assert (await _order(client, users, uuid4(), ticket)).status_code == 201


async def test_a_buyer_whose_order_expired_may_order_the_ticket_again_after_the_cooldown(
    serve_orders: ServeOrders, bus: EventBus, db: Database, users: Users
) -> None:
    async with serve_orders(REORDER_COOLDOWN_SECONDS=2) as orders, orders.client() as client:
        ticket = await Tickets(bus, db).listed()
        buyer = uuid4()
        order_id = UUID((await _order(client, users, buyer, ticket)).json()["id"])
        await bus.publish(Envelope.of(ExpirationComplete(order_id=order_id)))

        async def cancelled() -> bool:
            return await _open_orders(db, buyer) == 0

        await wait_until(cancelled)

        refused = await _order(client, users, buyer, ticket)
        assert refused.status_code == 429
        assert "You can reserve it again in" in _message(refused)
        assert 1 <= _retry_after(refused) <= 2

        async def ordered() -> httpx.Response | None:
            response = await _order(client, users, buyer, ticket)
            return response if response.status_code != 429 else None

        assert (await wait_until(ordered, interval=0.5)).status_code == 201


async def test_without_redis_the_rates_are_not_enforced_but_the_cap_still_holds(
    serve_orders: ServeOrders, bus: EventBus, db: Database, users: Users
) -> None:
    nothing_there = f"redis://127.0.0.1:{free_port()}/0"
    async with (
        serve_orders(
            REDIS_URL=nothing_there, ORDER_RATE_PER_USER="1/minute", MAX_OPEN_ORDERS_PER_USER=2
        ) as orders,
        orders.client() as client,
    ):
        tickets = Tickets(bus, db)
        listed = [await tickets.listed() for _ in range(3)]
        buyer = uuid4()

        responses = [await _order(client, users, buyer, ticket) for ticket in listed]

        assert [response.status_code for response in responses] == [201, 201, 429]
        assert _message(responses[2]) == CAP_MESSAGE.format(2)


def _of_the_request(sent: list[str]) -> list[str]:
    """The statements a request sent: the outbox relay shares the engine, and its reads
    and deletes of outbox rows are not the request's (the request's own outbox row is
    written by its order's insert, a statement that starts ``WITH``)."""
    return [
        statement
        for statement in sent
        if "outbox" not in statement or statement.lstrip().startswith("WITH")
    ]


async def test_a_seat_another_order_holds_is_refused_from_one_read_the_buyers_own_rules_first(
    serve_orders: ServeOrders, bus: EventBus, db: Database, users: Users
) -> None:
    """Most requests of a sell-out: the seat is held already. One statement answers
    them (no insert, no second look at the buyer), with the same answers as before:
    the buyer's cool-down, then their cap, then 409."""
    async with serve_orders(MAX_OPEN_ORDERS_PER_USER=2) as orders, orders.client() as client:
        tickets = Tickets(bus, db)
        seat, first, second = [await tickets.listed() for _ in range(3)]
        holder, buyer, cooling, hoarder = uuid4(), uuid4(), uuid4(), uuid4()
        cancelled = (await _order(client, users, cooling, seat)).json()["id"]
        assert (
            await client.delete(f"/api/orders/{cancelled}", headers=users.headers(cooling))
        ).status_code == 204
        assert (await _order(client, users, holder, seat)).status_code == 201
        for ticket in (first, second):
            assert (await _order(client, users, hoarder, ticket)).status_code == 201
        before = await _open_orders(db, holder), await _open_orders(db, hoarder)

        with statements_of(orders.component(Database)) as sent:
            taken = await _order(client, users, buyer, seat)
        assert taken.status_code == 409
        assert taken.json()["errors"] == [
            {"message": "Ticket is already reserved", "field": "ticketId"}
        ]
        request = _of_the_request(sent)
        assert len(request) == 1, request

        cooling_down = await _order(client, users, cooling, seat)
        assert cooling_down.status_code == 429
        assert "cancelled or expired a moment ago" in _message(cooling_down)
        at_cap = await _order(client, users, hoarder, seat)
        assert at_cap.status_code == 429
        assert _message(at_cap) == CAP_MESSAGE.format(2)
        assert 1 <= _retry_after(at_cap) <= 900

        # Nothing was written by the refusals; the holder still holds the seat.
        assert (await _open_orders(db, holder), await _open_orders(db, hoarder)) == before
        assert await _open_orders(db, buyer) == 0
        assert len(await published(bus, OrderCreated, 4)) == 4


async def test_a_refusal_for_stock_that_is_gone_waits_for_no_lock(
    serve_orders: ServeOrders, bus: EventBus, db: Database, users: Users
) -> None:
    """Once the process has seen the stock taken (it reserved the seat, or refused an
    order of the listing as sold out), the look that refuses the next buyers runs
    outside any transaction and takes no lock: it is answered while the ticket's
    replica row is locked for update, as applying a new version or a withdrawal locks
    it, where the share lock an order takes would wait. A free seat still waits."""
    async with serve_orders() as orders, orders.client() as client:
        tickets = Tickets(bus, db)
        seat, listing, free = (
            await tickets.listed(),
            await tickets.listed(units=1),
            await tickets.listed(),
        )
        for ticket in (seat, listing):
            assert (await _order(client, users, uuid4(), ticket)).status_code == 201
        assert (await _order(client, users, uuid4(), listing)).status_code == 409

        async with db.engine.connect() as connection, connection.begin():
            for ticket in (seat, listing, free):
                await connection.execute(
                    text("SELECT 1 FROM tickets WHERE id = :id FOR UPDATE"), {"id": ticket.id}
                )
            held = await asyncio.wait_for(_order(client, users, uuid4(), seat), 5)
            sold_out = await asyncio.wait_for(_order(client, users, uuid4(), listing), 5)
            waiting = asyncio.create_task(_order(client, users, uuid4(), free))
            await asyncio.sleep(0.5)
            assert not waiting.done()

        assert held.status_code == 409
        assert _message(held) == "Ticket is already reserved"
        assert sold_out.status_code == 409
        assert _message(sold_out) == "Not enough tickets left"
        assert (await waiting).status_code == 201


async def test_only_a_ticket_seen_taken_is_looked_at_before_the_transaction(
    serve_orders: ServeOrders, bus: EventBus, db: Database, users: Users
) -> None:
    """The first purchase of a seat goes straight to the transaction. Once reserved,
    the seat is looked at first: a purchase after its order was cancelled finds it
    free there (one statement more) and is decided in the transaction as before; the
    next buyer is refused by the look alone."""
    async with serve_orders() as orders, orders.client() as client:
        tickets = Tickets(bus, db)
        seat = await tickets.listed()
        first, second, third = uuid4(), uuid4(), uuid4()
        database = orders.component(Database)

        with statements_of(database) as sent:
            bought = await _order(client, users, first, seat)
        assert bought.status_code == 201
        straight = _of_the_request(sent)
        assert len(straight) == 2, straight  # the read, and the order with its event
        cancelled = await client.delete(
            f"/api/orders/{bought.json()['id']}", headers=users.headers(first)
        )
        assert cancelled.status_code == 204

        with statements_of(database) as sent:
            again = await _order(client, users, second, seat)
        assert again.status_code == 201
        looked_first = _of_the_request(sent)
        assert len(looked_first) == len(straight) + 1, (straight, looked_first)

        with statements_of(database) as sent:
            refused = await _order(client, users, third, seat)
        assert refused.status_code == 409
        assert len(_of_the_request(sent)) == 1
