"""After the purchase: admissions, withdrawn tickets, and why an order was cancelled.

- ``admissions``: one per complete order, what its e-ticket admits at the door,
  checked in once, voided by a refund or a withdrawal (docs/after-purchase.md).
  Orders complete before this revision get theirs.
- ``tickets.withdrawn``: the seller took the ticket off sale (ticket:withdrawn).
- ``orders.cancel_reason``: what the order's order:cancelled said. Orders cancelled
  before this revision keep none and read as ``cancelled``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "tickets",
        sa.Column("withdrawn", sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    op.add_column("orders", sa.Column("cancel_reason", sa.String(32), nullable=True))
    op.create_table(
        "admissions",
        sa.Column("order_id", sa.Uuid(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column(
            "issued_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("checked_in_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checked_in_by", sa.Uuid(), nullable=True),
        sa.Column("checked_in_by_email", sa.Text(), nullable=True),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name="fk_admissions_order_id_orders"),
        sa.PrimaryKeyConstraint("order_id", name="pk_admissions"),
    )
    # Orders paid before admissions existed get theirs, issued when the order was made
    # (the nearest time kept), so every complete order can be checked in or refunded.
    op.execute(
        "INSERT INTO admissions (order_id, ticket_id, issued_at) "
        "SELECT id, ticket_id, created_at FROM orders WHERE status = 'complete'"
    )


def downgrade() -> None:
    op.drop_table("admissions")
    op.drop_column("orders", "cancel_reason")
    op.drop_column("tickets", "withdrawn")
