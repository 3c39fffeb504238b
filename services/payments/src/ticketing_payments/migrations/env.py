"""Alembic environment of payments' database (with the outbox: payments publishes events)."""

from ticketing_common.alembic_env import run
from ticketing_payments.models import Base

run(Base.metadata, with_outbox=True)
