"""The order replica keeps the order's quantity (units of a general-admission listing):
the buyer pays the unit price times it. Orders replicated before are of one unit.

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


def upgrade() -> None:
    op.add_column("orders", sa.Column("quantity", sa.Integer(), server_default="1", nullable=False))


def downgrade() -> None:
    op.drop_column("orders", "quantity")
