"""Alembic operations shared by the services' migrations.

Every service that publishes events has the same ``outbox`` table; its migrations
create it from the one definition, :data:`ticketing_common.events.outbox.outbox_table`,
rather than spelling the DDL again (the services' model checks compare the result
with that definition).
"""

from __future__ import annotations

from alembic import op
from sqlalchemy.schema import CreateTable, DropTable

from ticketing_common.events.outbox import outbox_table


def create_outbox_table() -> None:
    """Events recorded with the change that caused them, published by the relay."""
    # A DDL element rather than Table.create: it also renders in offline (--sql) mode.
    op.execute(CreateTable(outbox_table))


def drop_outbox_table() -> None:
    op.execute(DropTable(outbox_table))
