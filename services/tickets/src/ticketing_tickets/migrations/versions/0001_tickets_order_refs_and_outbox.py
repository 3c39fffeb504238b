"""Tickets, the order references of the order listeners, and the outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ticketing_common.migration_ops import create_outbox_table, drop_outbox_table

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tickets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("price_cents", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name="pk_tickets"),
    )
    # The list page: tickets for sale, newest first.
    op.create_index(
        "ix_tickets_for_sale",
        "tickets",
        [sa.text("created_at DESC"), sa.text("id DESC")],
        postgresql_where=sa.text("order_id IS NULL"),
    )

    op.create_table(
        "order_refs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_order_refs"),
    )

    create_outbox_table()


def downgrade() -> None:
    drop_outbox_table()
    op.drop_table("order_refs")
    op.drop_index("ix_tickets_for_sale", table_name="tickets")
    op.drop_table("tickets")
