"""Users (unique on lower(email)) and the counters of failed sign-ins.

Revision ID: 0001
Revises:
Create Date: 2025-01-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
    )
    # Decides concurrent sign-ups with one address in the database (race-safe 409).
    op.create_index("uq_users_email_lower", "users", [sa.text("lower(email)")], unique=True)

    op.create_table(
        "signin_counters",
        sa.Column("key", sa.String(320), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_signin_counters"),
    )
    op.create_index(
        "ix_signin_counters_window_started_at", "signin_counters", ["window_started_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_signin_counters_window_started_at", table_name="signin_counters")
    op.drop_table("signin_counters")
    op.drop_index("uq_users_email_lower", table_name="users")
    op.drop_table("users")
