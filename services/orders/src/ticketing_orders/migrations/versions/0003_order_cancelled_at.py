"""Orders record when they were cancelled.

A buyer may not order a ticket again for a short cool-down after their order of it
was cancelled or expired (docs/security.md, "Fair holds"); the cool-down counts
from this time.

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
    # Orders cancelled before this revision keep no time, so they start no cool-down.
    op.add_column("orders", sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("orders", "cancelled_at")
