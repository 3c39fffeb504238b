"""Database helpers: URL forms, a service's declarative base, the Alembic configuration,
the pool after PostgreSQL dropped its connections."""

from __future__ import annotations

import pytest
from sqlalchemy import String, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapped, mapped_column

from ticketing_common.db import (
    NAMING_CONVENTION,
    Database,
    ServiceBase,
    alembic_config,
    asyncpg_url,
    plain_url,
)

# A password with "%" and "@" is %-encoded in a URL; ConfigParser would read "%2" as the
# start of an interpolation.
ENCODED = "postgresql://shop:50%25off%40now@db.internal:5432/ticketing_orders"


def test_urls_of_either_form_select_the_driver_asked_for() -> None:
    assert asyncpg_url("postgres://u@h/d") == "postgresql+asyncpg://u@h/d"
    assert plain_url("postgresql+asyncpg://u@h/d") == "postgresql://u@h/d"


def test_the_alembic_configuration_keeps_a_percent_encoded_password_intact() -> None:
    config = alembic_config("ticketing_common", ENCODED)

    assert config.get_main_option("sqlalchemy.url") == asyncpg_url(ENCODED)
    assert str(config.get_main_option("script_location")).endswith("ticketing_common/migrations")


class FirstBase(ServiceBase):
    pass


class SecondBase(ServiceBase):
    pass


class FirstItem(FirstBase):
    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)


class SecondItem(SecondBase):
    """Same table name as FirstItem's, as a replica has its owner's."""

    __tablename__ = "items"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(20), unique=True)


def test_each_service_base_has_its_own_metadata_and_registry() -> None:
    assert FirstBase.metadata is not SecondBase.metadata
    assert FirstBase.registry is not SecondBase.registry
    assert FirstBase.metadata.tables["items"] is FirstItem.__table__
    assert SecondBase.metadata.tables["items"] is SecondItem.__table__
    assert {mapper.class_ for mapper in SecondBase.registry.mappers} == {SecondItem}
    # The shared class maps nothing itself.
    assert not ServiceBase.metadata.tables
    assert not ServiceBase.registry.mappers


def test_a_service_base_names_constraints_by_the_shared_convention() -> None:
    assert SecondBase.metadata.naming_convention == NAMING_CONVENTION
    names = {constraint.name for constraint in SecondBase.metadata.tables["items"].constraints}
    assert names == {"pk_items", "uq_items_name"}


async def test_connections_the_server_dropped_fail_the_readiness_ping_once_then_are_replaced(
    database_url: str,
) -> None:
    # No ping per checkout: a dropped connection is found by its first statement.
    database = Database(database_url, pool_size=2)
    other = Database(database_url, pool_size=1)
    try:
        async with database.transaction() as session:
            pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        async with other.transaction() as session:
            # As a restart of PostgreSQL would, to the idle connection in the pool.
            await session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        # Which error depends on when asyncpg reads the termination (a closed
        # connection, or a protocol state error mid-statement); either is the driver's.
        with pytest.raises(DBAPIError):
            await database.ping()
        await database.ping()
        async with database.transaction() as session:
            new_pid = (await session.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert new_pid != pid
    finally:
        await database.dispose()
        await other.dispose()
