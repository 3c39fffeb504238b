"""Child process for the batch crash test: a listener that dies after its first commit.

Run as ``python listener_batch_child.py <nats url> <namespace> <database url>``, it
consumes with the crash point between a batch's commit and its acks armed, so it
SIGKILLs itself right after its first commit.
"""

from __future__ import annotations

import asyncio
import sys

# Run as a script, so its own directory is on the path: the test's very handler.
from test_listener_batches import POLICY, apply_copy  # type: ignore[import-not-found]

from ticketing_common import faults
from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import TicketCreated
from ticketing_common.events.listener import ListenerGroup, transactional


async def main(nats_url: str, namespace: str, database_url: str) -> None:
    faults.arm({"listener.after_commit": 1.0})
    bus = await EventBus(nats_url, namespace, client_name="child").connect()
    database = Database(database_url)
    group = ListenerGroup(bus, "orders", POLICY)
    group.add(TicketCreated, transactional(database, apply_copy))
    await group.run(asyncio.Event())  # until the crash point kills the process


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
