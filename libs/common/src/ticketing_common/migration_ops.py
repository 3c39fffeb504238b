"""Alembic operations shared by the services' migrations.

Every service that publishes events has the same ``outbox`` table; its migrations
create it from the one definition, :data:`ticketing_common.events.outbox.outbox_table`,
rather than spelling the DDL again (the services' model checks compare the result
with that definition). A column added to the outbox later is added by an operation
of its own, which each service's next migration runs; the first migrations create
the table without those columns, as it was when they were written.
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import Table
from sqlalchemy.schema import CreateTable, DropTable

from ticketing_common.db import new_metadata
from ticketing_common.events.outbox import TRACE_CONTEXT_COLUMN, outbox_table

# Columns added after the outbox was first created, oldest first, each with its op.
ADDED_COLUMNS = (TRACE_CONTEXT_COLUMN,)


def _first_outbox_table() -> Table:
    """The outbox as the services' first migrations created it."""
    return Table(
        outbox_table.name,
        new_metadata(),
        *(column._copy() for column in outbox_table.columns if column.name not in ADDED_COLUMNS),
    )


def create_outbox_table() -> None:
    """Events recorded with the change that caused them, published by the relay."""
    # A DDL element rather than Table.create: it also renders in offline (--sql) mode.
    op.execute(CreateTable(_first_outbox_table()))


def drop_outbox_table() -> None:
    op.execute(DropTable(_first_outbox_table()))


def add_outbox_trace_context() -> None:
    """The trace context each event was recorded in (``ticketing_common.tracing``)."""
    op.add_column(outbox_table.name, outbox_table.c[TRACE_CONTEXT_COLUMN]._copy())


def drop_outbox_trace_context() -> None:
    op.drop_column(outbox_table.name, TRACE_CONTEXT_COLUMN)
