"""Alembic environment of notifications' database (with the outbox, which every service
with a database and a bus has, though notifications publishes nothing yet)."""

from ticketing_common.alembic_env import run
from ticketing_notifications.models import Base

run(Base.metadata, with_outbox=True)
