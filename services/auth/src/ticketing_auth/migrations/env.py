"""Alembic environment of auth's database (with the outbox: auth publishes session:revoked)."""

from ticketing_auth.models import Base
from ticketing_common.alembic_env import run

run(Base.metadata)
