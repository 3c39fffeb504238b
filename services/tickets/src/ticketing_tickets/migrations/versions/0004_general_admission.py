"""General-admission listings: a quantity of units at one price, counted from order events.

``tickets`` gains ``general_admission``, ``quantity`` and the counts of its units held
and sold (with what the sold ones fetched); ``order_refs`` gains each order's share of
those counts. A listing stays on the list page while any unit is available, so the
partial index of tickets for sale says so.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _counts() -> list[sa.Column[int]]:
    return [
        sa.Column("units_held", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("units_sold", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("sold_cents", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
    ]


def upgrade() -> None:
    op.add_column(
        "tickets",
        sa.Column(
            "general_admission", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
    )
    op.add_column(
        "tickets", sa.Column("quantity", sa.Integer(), server_default=sa.text("1"), nullable=False)
    )
    for column in _counts():
        op.add_column("tickets", column)
    for column in _counts():
        op.add_column("order_refs", column)
    op.drop_index("ix_tickets_for_sale", table_name="tickets")
    op.create_index(
        "ix_tickets_for_sale",
        "tickets",
        [sa.text("created_at DESC"), sa.text("id DESC")],
        postgresql_where=sa.text(
            "order_id IS NULL AND withdrawn_at IS NULL AND units_held + units_sold < quantity"
        ),
    )


def downgrade() -> None:
    op.drop_index("ix_tickets_for_sale", table_name="tickets")
    op.create_index(
        "ix_tickets_for_sale",
        "tickets",
        [sa.text("created_at DESC"), sa.text("id DESC")],
        postgresql_where=sa.text("order_id IS NULL AND withdrawn_at IS NULL"),
    )
    for table in ("order_refs", "tickets"):
        for column in ("sold_cents", "units_sold", "units_held"):
            op.drop_column(table, column)
    op.drop_column("tickets", "quantity")
    op.drop_column("tickets", "general_admission")
