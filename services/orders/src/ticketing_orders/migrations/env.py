"""Alembic environment of orders' database (with the outbox: orders publishes events)."""

from ticketing_common.alembic_env import run
from ticketing_orders.models import Base

run(Base.metadata)
