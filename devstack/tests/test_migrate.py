"""The migration run of `ticketing up`: every service's database to head in one process,
and a failure named by service."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import pytest

from ticketing_common.db import plain_url
from ticketing_common.embedded import free_port
from ticketing_devstack import migrate

SERVICES = {"auth": "ticketing_auth", "tickets": "ticketing_tickets"}


async def _tables(url: str) -> set[str]:
    connection = await asyncpg.connect(plain_url(url))
    try:
        rows = await connection.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"
        )
    finally:
        await connection.close()
    return {row["table_name"] for row in rows}


def test_one_run_migrates_each_services_own_database_and_names_the_one_that_fails(
    make_database: Callable[[], str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    urls = {name: make_database() for name in SERVICES}
    for name, url in urls.items():
        monkeypatch.setenv(migrate.url_variable(name), url)
    # Nothing listens there: the third service's migrations cannot run.
    monkeypatch.setenv(
        migrate.url_variable("orders"), f"postgresql://postgres@127.0.0.1:{free_port()}/none"
    )
    arguments = [migrate.argument(name, package) for name, package in SERVICES.items()]

    migrated = migrate.main(arguments)
    first_output = capsys.readouterr().out
    failed = migrate.main([*arguments, migrate.argument("orders", "ticketing_orders")])
    lines = capsys.readouterr().out.splitlines()
    auth, tickets = (asyncio.run(_tables(urls[name])) for name in SERVICES)

    assert migrated == 0
    assert first_output.splitlines() == [
        "migrating auth",
        "migrated auth",
        "migrating tickets",
        "migrated tickets",
    ]
    # Each database got its own service's schema, and only that.
    assert {"alembic_version", "users", "outbox"} <= auth
    assert {"alembic_version", "tickets", "outbox"} <= tickets
    assert "users" not in tickets
    assert "tickets" not in auth
    # A second run finds both at head and goes on to the next service, which fails.
    assert failed == 1
    assert lines[-1] == migrate.FAILED_LINE.format(name="orders")
    assert "migrated tickets" in lines
