"""Child process for the batch crash test: a listener that dies after its first commit.

Run as ``python listener_batch_child.py <nats url> <namespace> <database url>
[together]``, it consumes with the crash point between a batch's commit and its acks
armed, so it SIGKILLs itself right after its first commit. With ``together`` its
listener has a replica's batch step too (``applied_together``).
"""

from __future__ import annotations

import asyncio
import sys

# Run as a script, so its own directory is on the path: the test's very handler.
from test_listener_batches import (  # type: ignore[import-not-found]
    POLICY,
    Copy,
    apply_copy,
    copy_change,
)

from ticketing_common import faults
from ticketing_common.db import Database
from ticketing_common.events.bus import EventBus
from ticketing_common.events.contracts import TicketCreated
from ticketing_common.events.listener import ListenerGroup, transactional
from ticketing_common.events.replica import applied_together


async def main(nats_url: str, namespace: str, database_url: str, mode: str = "") -> None:
    faults.arm({"listener.after_commit": 1.0})
    bus = await EventBus(nats_url, namespace, client_name="child").connect()
    database = Database(database_url)
    group = ListenerGroup(bus, "orders", POLICY)
    together = applied_together(Copy, copy_change) if mode == "together" else None
    group.add(TicketCreated, transactional(database, apply_copy, together=together))
    await group.run(asyncio.Event())  # until the crash point kills the process


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
