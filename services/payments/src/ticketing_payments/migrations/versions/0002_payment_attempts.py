"""Payments record the attempt before the charge: the latest confirmation's idempotency
key and when it began (statuses pending, failed and voided join succeeded and refunded).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("payments", sa.Column("idempotency_key", sa.String(255), nullable=True))
    op.add_column(
        "payments",
        sa.Column(
            "attempted_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.clock_timestamp(),
            nullable=False,
        ),
    )


def downgrade() -> None:
    # Rows of attempts that never charged mean nothing to the older schema.
    op.execute("DELETE FROM payments WHERE status NOT IN ('succeeded', 'refunded')")
    op.drop_column("payments", "attempted_at")
    op.drop_column("payments", "idempotency_key")
