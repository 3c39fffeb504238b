"""Alembic environment of tickets' database (with the outbox: tickets publishes events)."""

from ticketing_common.alembic_env import run
from ticketing_tickets.models import Base

run(Base.metadata)
