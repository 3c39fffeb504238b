"""Alembic operations shared by the services' migrations.

Every service that publishes events has the same ``outbox`` table
(:data:`ticketing_common.events.outbox.outbox_table`); its migrations create it
with :func:`create_outbox_table` rather than spelling the DDL again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


def create_outbox_table() -> None:
    """Events recorded with the change that caused them, published by the relay."""
    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("subject_suffix", sa.String(128), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("seq", name="pk_outbox"),
        sa.UniqueConstraint("event_id", name="uq_outbox_event_id"),
    )


def drop_outbox_table() -> None:
    op.drop_table("outbox")
