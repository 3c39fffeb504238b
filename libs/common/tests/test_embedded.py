"""The one decision between configured and embedded servers, the one way to create a
database, and the one child-process abstraction, with real processes and PostgreSQL."""

from __future__ import annotations

import os
import sys
from functools import partial
from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest

from ticketing_common.embedded import (
    GO_RUNTIME,
    NATS,
    REDIS,
    ChildProcess,
    EmbeddedServer,
    NatsServer,
    NotReadyError,
    PostgresServer,
    configured_or_embedded,
    create_database,
    drop_database,
    free_port,
    listening,
    wait_until_ready,
    with_database,
)
from ticketing_common.testing.plugin import Infrastructure


def test_a_configured_server_is_used_and_only_the_missing_wanted_ones_are_started(
    tmp_path: Path,
) -> None:
    started: list[EmbeddedServer] = []

    def start(server: EmbeddedServer) -> str:
        started.append(server)
        return server.url

    urls = configured_or_embedded(
        {"NATS_URL": "nats://broker:4222", "REDIS_URL": "  "}, tmp_path, start, postgres=False
    )

    assert urls.nats == "nats://broker:4222"
    assert urls.postgres is None
    assert [type(server) for server in started] == [REDIS.server]
    assert started[0].data_dir == tmp_path / "redis"
    assert urls.redis == started[0].url
    assert urls.external == (NATS,)


def test_with_database_keeps_the_server_and_options_in_the_plain_scheme() -> None:
    url = "postgresql+asyncpg://u:pw@db:5432/postgres?ssl=require"

    assert with_database(url, "ticketing_orders") == (
        "postgresql://u:pw@db:5432/ticketing_orders?ssl=require"
    )


async def test_create_database_if_missing_creates_once_and_copies_a_template(
    infrastructure: Infrastructure,
) -> None:
    admin = infrastructure.postgres_url
    name, copy = f"test_{uuid4().hex[:12]}", f"test_{uuid4().hex[:12]}"
    try:
        first = await create_database(admin, name, if_missing=True)
        again = await create_database(admin, name, if_missing=True)
        connection = await asyncpg.connect(with_database(admin, name))
        try:
            await connection.execute("CREATE TABLE marker (id int)")
        finally:
            await connection.close()
        await create_database(admin, copy, template=name)
        connection = await asyncpg.connect(with_database(admin, copy))
        try:
            copied = await connection.fetchval("SELECT to_regclass('marker') IS NOT NULL")
        finally:
            await connection.close()
        with pytest.raises(asyncpg.DuplicateDatabaseError):
            await create_database(admin, name)
    finally:
        await drop_database(admin, copy)
        await drop_database(admin, name)

    assert (first, again) == (True, False)
    assert copied is True


async def test_the_tests_postgres_skips_fsync_and_the_stacks_keeps_it(
    infrastructure: Infrastructure, tmp_path: Path
) -> None:
    connection = await asyncpg.connect(infrastructure.postgres_url)
    try:
        fsync = await connection.fetchval("SHOW fsync")
    finally:
        await connection.close()
    stacks = PostgresServer("postgres", free_port(), tmp_path).argv()

    # Unless the tests were pointed at a server of their own (DATABASE_URL).
    assert fsync == ("on" if os.environ.get("DATABASE_URL") else "off")
    assert "fsync=on" in stacks
    assert "fsync=off" not in stacks


def test_a_child_that_exits_before_it_is_ready_is_named_with_its_exit_code(
    tmp_path: Path,
) -> None:
    port = free_port()
    child = ChildProcess(
        "broken",
        [sys.executable, "-c", "print('no config'); raise SystemExit(3)"],
        tmp_path / "broken.log",
        probe=partial(listening, port),
    )
    child.start()

    with pytest.raises(NotReadyError) as error:
        wait_until_ready([child], 30)

    assert str(error.value) == "broken exited with code 3 before it was ready"
    assert error.value.child is child
    assert (tmp_path / "broken.log").read_text() == "no config\n"


def test_an_embedded_server_serves_once_started_and_stops_by_its_pid(tmp_path: Path) -> None:
    server = NatsServer("nats", free_port(), tmp_path).start()
    pid = server.pid
    try:
        assert server.probe() is None
    finally:
        server.stop()

    assert pid is not None
    assert server.pid is None
    assert listening(server.port) is not None
    assert "Server is ready" in (tmp_path / "nats.log").read_text()


def test_nats_server_runs_with_the_go_runtime_settings(tmp_path: Path) -> None:
    server = NatsServer("nats", free_port(), tmp_path).start()
    try:
        environ = Path(f"/proc/{server.pid}/environ").read_bytes().split(b"\0")
    finally:
        server.stop()

    for name, value in GO_RUNTIME.items():
        if name not in os.environ:  # ours wins when set
            assert f"{name}={value}".encode() in environ


def test_a_free_port_is_never_one_of_the_ports_to_avoid() -> None:
    # The system hands out ports from its ephemeral range: avoid all of it but a few
    # hundred, so without the check almost every pick would be an avoided port.
    low, high = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    avoid = frozenset(range(low, high + 1)) - frozenset(range(low, low + 300))
    picks = [free_port(avoid) for _ in range(5)]
    assert not avoid.intersection(picks)
