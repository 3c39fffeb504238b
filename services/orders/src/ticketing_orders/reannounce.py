"""``python -m ticketing_orders.reannounce``: orders tells the other services again what
it knows of some orders, so a consumer that lost or gave up on an order event repairs.

Orders owns the truth of which order holds each ticket. When tickets' view departs
from it (an order:created dead-lettered after waiting too long for the previous
holder's order:cancelled, or a ticket left wrong by an older release), the operator
names the tickets (or orders) and this records, in orders' outbox, each order's
order:created and, for a cancelled order, its order:cancelled. The running orders
service's relay publishes them; every consumer applies them by version, so one that
already had them changes nothing, and tickets makes each ticket agree with them.

    python -m ticketing_orders.reannounce --ticket <id> [--ticket <id> ...]
    python -m ticketing_orders.reannounce --order <id> [--order <id> ...]
    python -m ticketing_orders.reannounce --all

Reads ``DATABASE_URL`` (orders' database) like the service.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from uuid import UUID

from ticketing_common.db import Database
from ticketing_orders import repository, service
from ticketing_orders.settings import Settings

# Orders per transaction: a whole-database re-announcement is not one huge commit.
BATCH_SIZE = 500


async def reannounce(
    database: Database,
    *,
    ticket_ids: Sequence[UUID] = (),
    order_ids: Sequence[UUID] = (),
    everything: bool = False,
) -> int:
    """Record the events of the chosen orders in the outbox; how many were recorded."""
    async with database.transaction() as session:
        if everything:
            chosen = await repository.all_order_ids(session)
        else:
            chosen = await repository.order_ids_of_tickets(session, ticket_ids)
            chosen += [order_id for order_id in order_ids if order_id not in chosen]
    recorded = 0
    for start in range(0, len(chosen), BATCH_SIZE):
        async with database.transaction() as session:
            recorded += await service.reannounce_orders(session, chosen[start : start + BATCH_SIZE])
    return recorded


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ticketing_orders.reannounce",
        description="Publish again the order events of some orders, through orders' outbox.",
    )
    parser.add_argument(
        "--ticket", type=UUID, action="append", default=[], help="every order of this ticket"
    )
    parser.add_argument("--order", type=UUID, action="append", default=[], help="this order")
    parser.add_argument("--all", action="store_true", help="every order")
    arguments = parser.parse_args(argv)
    if not (arguments.ticket or arguments.order or arguments.all):
        parser.error("name at least one --ticket or --order, or --all")
    return arguments


async def run(arguments: argparse.Namespace, settings: Settings) -> int:
    database = Database(settings.DATABASE_URL, pool_size=1)
    try:
        return await reannounce(
            database,
            ticket_ids=arguments.ticket,
            order_ids=arguments.order,
            everything=arguments.all,
        )
    finally:
        await database.dispose()


def main(argv: Sequence[str]) -> int:
    arguments = parse(argv)
    recorded = asyncio.run(run(arguments, Settings()))
    print(f"{recorded} order events recorded; the orders service publishes them.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
