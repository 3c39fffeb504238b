"""The outbox keeps the trace context each event was recorded in.

The relay publishes the event in that trace, so the services that consume it
continue it (docs/operations.md, "Tracing"). Rows recorded before keep none.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

from ticketing_common.migration_ops import add_outbox_trace_context, drop_outbox_trace_context

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    add_outbox_trace_context()


def downgrade() -> None:
    drop_outbox_trace_context()
