"""The ticket replica, orders (one reserving order per ticket), and the outbox.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ticketing_common.migration_ops import create_outbox_table, drop_outbox_table

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of models.HOLDING_STATUSES as of this revision.
HOLDING_STATUSES = "('created', 'awaiting:payment', 'complete')"


def upgrade() -> None:
    op.create_table(
        "tickets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("price_cents", sa.BigInteger(), nullable=False),
        sa.Column("seller_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tickets"),
    )

    op.create_table(
        "orders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.clock_timestamp(),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(["ticket_id"], ["tickets.id"], name="fk_orders_ticket_id_tickets"),
        sa.PrimaryKeyConstraint("id", name="pk_orders"),
    )
    # The reservation lock: at most one order per ticket that holds it. Decides
    # concurrent buyers of one ticket in the database (race-safe 409).
    op.create_index(
        "uq_orders_ticket_id_reserving",
        "orders",
        ["ticket_id"],
        unique=True,
        postgresql_where=sa.text(f"status IN {HOLDING_STATUSES}"),
    )
    op.create_index("ix_orders_user_id_created_at", "orders", ["user_id", "created_at"])

    create_outbox_table()


def downgrade() -> None:
    drop_outbox_table()
    op.drop_index("ix_orders_user_id_created_at", table_name="orders")
    op.drop_index("uq_orders_ticket_id_reserving", table_name="orders")
    op.drop_table("orders")
    op.drop_table("tickets")
