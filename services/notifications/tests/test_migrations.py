"""Notifications' migrations build exactly the schema its models (and the outbox) describe."""

from __future__ import annotations

from ticketing_common.events.outbox import outbox_metadata
from ticketing_common.testing.migrations import schema_differences
from ticketing_notifications.models import Base


async def test_migrated_database_matches_the_models_and_the_outbox(migrated_url: str) -> None:
    assert await schema_differences(migrated_url, Base.metadata, outbox_metadata) == []
