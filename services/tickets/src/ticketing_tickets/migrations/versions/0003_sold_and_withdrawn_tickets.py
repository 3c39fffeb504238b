"""Tickets can be sold and withdrawn; a seller's listings are read by seller.

``sold_at`` is set by order:completed and cleared by a refund's order:cancelled;
``withdrawn_at`` by the seller's withdrawal. A withdrawn ticket leaves the list
page, so the partial index of tickets for sale excludes it.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("tickets", sa.Column("sold_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("tickets", sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True))
    op.drop_index("ix_tickets_for_sale", table_name="tickets")
    op.create_index(
        "ix_tickets_for_sale",
        "tickets",
        [sa.text("created_at DESC"), sa.text("id DESC")],
        postgresql_where=sa.text("order_id IS NULL AND withdrawn_at IS NULL"),
    )
    op.create_index(
        "ix_tickets_of_seller",
        "tickets",
        ["user_id", sa.text("created_at DESC"), sa.text("id DESC")],
    )


def downgrade() -> None:
    op.drop_index("ix_tickets_of_seller", table_name="tickets")
    op.drop_index("ix_tickets_for_sale", table_name="tickets")
    op.create_index(
        "ix_tickets_for_sale",
        "tickets",
        [sa.text("created_at DESC"), sa.text("id DESC")],
        postgresql_where=sa.text("order_id IS NULL"),
    )
    op.drop_column("tickets", "withdrawn_at")
    op.drop_column("tickets", "sold_at")
