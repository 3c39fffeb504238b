"""Child process for the crash test: commit a change and its outbox row, then die.

Run as ``python outbox_crash_child.py <database url>``. It is killed with SIGKILL
by itself right after the commit, before any relay could publish.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from decimal import Decimal
from uuid import UUID

from sqlalchemy import text

from ticketing_common.db import Database
from ticketing_common.events.contracts import TicketCreated
from ticketing_common.events.outbox import record


async def main(url: str, ticket_id: UUID) -> None:
    database = Database(url)
    async with database.transaction() as session:
        await session.execute(
            text("INSERT INTO things (id, title) VALUES (:id, 'Concert')"), {"id": ticket_id}
        )
        await record(
            session,
            TicketCreated(
                id=ticket_id, version=0, title="Concert", price=Decimal("5"), user_id=ticket_id
            ),
        )
    # Committed; the relay never ran. Die the hardest way there is.
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], UUID(sys.argv[2])))
