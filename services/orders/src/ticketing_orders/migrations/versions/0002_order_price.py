"""Orders keep the price they were placed at.

The buyer pays the price the order was accepted at, not whatever the replica of
the ticket says later (a seller's edit can reach orders after the reservation).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("orders", sa.Column("price_cents", sa.BigInteger(), nullable=True))
    # Existing orders: the replica's price is the best record there is.
    op.execute(
        "UPDATE orders SET price_cents = tickets.price_cents FROM tickets "
        "WHERE tickets.id = orders.ticket_id"
    )
    op.alter_column("orders", "price_cents", nullable=False)


def downgrade() -> None:
    op.drop_column("orders", "price_cents")
