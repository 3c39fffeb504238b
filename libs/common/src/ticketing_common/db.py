"""The async database base: engine, one session per request or event handler, migrations.

The request (or the event handler) owns the transaction: :func:`session_dependency`
opens one, commits when the route returns and rolls back when it raises, before
the response is sent. Services flush; they never commit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import Enum, MetaData, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, registry

from ticketing_common.state import components_of

if TYPE_CHECKING:
    from alembic.config import Config

# Stable constraint names, so Alembic migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


def stored_by_value(kind: type[StrEnum], length: int = 32) -> Enum:
    """A status column typed with its enum, stored as the members' values in a plain
    VARCHAR (no database enum type, no CHECK): the strings the services' first
    migrations stored, so typing a column needs no data migration."""
    return Enum(
        kind,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


class ServiceBase(DeclarativeBase):
    """Subclassed once per service: that subclass is the service's declarative base.

    Each direct subclass (``class Base(ServiceBase)`` in a service's ``models.py``)
    gets a metadata and a registry of its own, with the naming convention above.
    Services must not share them: tests import several services into one process,
    and a replica's table and class have the name of its owner's (orders' ``tickets``
    and ``Ticket``).
    """

    def __init_subclass__(cls, **kw: Any) -> None:
        if ServiceBase in cls.__bases__:
            # DeclarativeBase sets up a registry only for its own direct subclasses, and
            # maps every deeper one into ``_sa_registry`` (SQLAlchemy's own attribute,
            # held to by the tests of test_db.py): give this base its own, and leave it
            # unmapped, before DeclarativeBase sees it.
            cls.registry = registry(metadata=new_metadata())
            cls.metadata = cls.registry.metadata
            cls._sa_registry = cls.registry
            cls.__abstract__ = True
        super().__init_subclass__(**kw)


def asyncpg_url(url: str) -> str:
    """Accept ``postgres://`` / ``postgresql://`` URLs and select the asyncpg driver."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url.removeprefix(prefix)
    raise ValueError(f"not a PostgreSQL URL: {url.rsplit('@', maxsplit=1)[-1]}")


def plain_url(url: str) -> str:
    """The libpq form of a URL, for asyncpg used directly (LISTEN/NOTIFY)."""
    return "postgresql://" + asyncpg_url(url).removeprefix("postgresql+asyncpg://")


class Database:
    """Engine and session factory of one service's database.

    ``pool_size`` connections are kept open, enough for the requests and handlers a
    process runs at once; up to ``max_overflow`` more are opened under a burst and
    closed when returned (each a connect and fresh prepared statements). No ping per
    checkout (a round trip before every transaction): a connection PostgreSQL dropped
    fails its first statement, which invalidates the whole pool, and the readiness
    check pings it every few seconds anyway.
    """

    def __init__(self, url: str, *, pool_size: int = 10, max_overflow: int | None = None) -> None:
        self.url = url
        self.engine: AsyncEngine = create_async_engine(
            asyncpg_url(url),
            pool_size=pool_size,
            max_overflow=pool_size if max_overflow is None else max_overflow,
        )
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in a transaction: committed on exit, rolled back on error.

        The transaction begins with the first statement (the session's autobegin), so
        a request that ran none (a GET answered from a cookie) has nothing to commit."""
        session = self.sessions()
        try:
            yield session
            if session.in_transaction():
                await session.commit()
        except BaseException:
            await session.close()  # rolls back, and returns the connection
            raise

    async def ping(self) -> None:
        async with self.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def database_of(request: Request) -> Database:
    return components_of(request.app).get(Database)


async def session_dependency(request: Request) -> AsyncIterator[AsyncSession]:
    async with database_of(request).transaction() as session:
        yield session


# scope="function": commit before the response is sent, so a client that reads
# right after a 201 sees its own write.
DbSession = Annotated[AsyncSession, Depends(session_dependency, scope="function")]


def migrations_dir(package: str) -> Path:
    """A service keeps its Alembic scripts in ``<package>/migrations``."""
    import importlib

    module = importlib.import_module(package)
    assert module.__file__ is not None
    return Path(module.__file__).parent / "migrations"


def alembic_config(package: str, database_url: str) -> Config:
    """The Alembic configuration of a service's migrations against ``database_url``."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir(package)))
    # Alembic's options are ConfigParser values, where "%" starts an interpolation: a
    # %-encoded character of a password would break the URL unless doubled.
    config.set_main_option("sqlalchemy.url", asyncpg_url(database_url).replace("%", "%%"))
    return config


def upgrade_to_head(package: str, database_url: str) -> None:
    """Run a service's Alembic migrations to head (synchronously, before it serves)."""
    from alembic import command

    command.upgrade(alembic_config(package, database_url), "head")
