"""Alembic environment of auth's database (no outbox: auth publishes no events)."""

from ticketing_auth.models import Base
from ticketing_common.alembic_env import run

run(Base.metadata, with_outbox=False)
