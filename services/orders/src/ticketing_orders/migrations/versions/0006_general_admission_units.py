"""General admission: listings of many interchangeable units, and who holds each unit.

- ``tickets.general_admission``, ``tickets.quantity``: what ticket:created says of the
  listing (a seat: false, 1).
- ``orders.general_admission``, ``orders.quantity``: the units an order holds. A
  general-admission order leaves the one-holder-per-ticket index, which is now for
  seats only: many orders hold units of one listing.
- ``ticket_units``: one row per unit of a general-admission listing, ``order_id`` the
  order holding it (null: free). Orders claim free rows with ``FOR UPDATE SKIP LOCKED``
  (docs/concurrency.md, rule 21).

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copy of models.HOLDING_STATUSES as of this revision.
HOLDING_STATUSES = "('created', 'awaiting:payment', 'complete')"


def upgrade() -> None:
    op.add_column(
        "tickets",
        sa.Column("general_admission", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column(
        "tickets", sa.Column("quantity", sa.Integer(), server_default="1", nullable=False)
    )
    op.add_column(
        "orders",
        sa.Column("general_admission", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column("orders", sa.Column("quantity", sa.Integer(), server_default="1", nullable=False))
    op.drop_index("uq_orders_ticket_id_reserving", table_name="orders")
    op.create_index(
        "uq_orders_ticket_id_reserving",
        "orders",
        ["ticket_id"],
        unique=True,
        postgresql_where=sa.text(f"status IN {HOLDING_STATUSES} AND NOT general_admission"),
    )
    op.create_table(
        "ticket_units",
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("unit", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Uuid(), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name="fk_ticket_units_ticket_id_tickets"
        ),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["orders.id"],
            name="fk_ticket_units_order_id_orders",
            deferrable=True,
            initially="DEFERRED",
        ),
        sa.PrimaryKeyConstraint("ticket_id", "unit", name="pk_ticket_units"),
    )
    op.create_index("ix_ticket_units_order_id", "ticket_units", ["order_id"])
    op.create_index(
        "ix_ticket_units_free",
        "ticket_units",
        ["ticket_id", "unit"],
        postgresql_where=sa.text("order_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_table("ticket_units")
    op.drop_index("uq_orders_ticket_id_reserving", table_name="orders")
    # General-admission orders would break the one-holder index: they go with their units.
    op.execute(
        "DELETE FROM admissions WHERE order_id IN (SELECT id FROM orders WHERE general_admission)"
    )
    op.execute("DELETE FROM orders WHERE general_admission")
    op.execute("DELETE FROM tickets WHERE general_admission")
    op.create_index(
        "uq_orders_ticket_id_reserving",
        "orders",
        ["ticket_id"],
        unique=True,
        postgresql_where=sa.text(f"status IN {HOLDING_STATUSES}"),
    )
    op.drop_column("orders", "quantity")
    op.drop_column("orders", "general_admission")
    op.drop_column("tickets", "quantity")
    op.drop_column("tickets", "general_admission")
