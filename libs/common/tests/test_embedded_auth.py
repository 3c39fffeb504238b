"""The embedded servers with passwords, as ``ticketing up`` runs them: Redis refuses a
client without its password, and neither keeps a password on its command line."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
import redis
import redis.exceptions

from ticketing_common.embedded import NatsServer, RedisServer, free_port


def test_redis_with_a_password_refuses_clients_without_it(tmp_path: Path) -> None:
    password = "p" * 40
    server = RedisServer("redis", free_port(), tmp_path, password=password).start()
    try:
        assert server.url == f"redis://:{password}@127.0.0.1:{server.port}/0"
        assert password not in " ".join(server.argv())
        assert stat.S_IMODE(server.config_path.stat().st_mode) == 0o600
        with redis.Redis.from_url(server.url) as client:
            assert client.ping()
        anonymous = f"redis://127.0.0.1:{server.port}/0"
        with (
            redis.Redis.from_url(anonymous) as client,
            pytest.raises(redis.exceptions.AuthenticationError),
        ):
            client.ping()
    finally:
        server.stop()


def test_without_a_password_or_config_the_servers_are_as_before(tmp_path: Path) -> None:
    redis_server = RedisServer("redis", 6379, tmp_path)
    nats_server = NatsServer("nats", 4222, tmp_path)
    assert redis_server.url == "redis://127.0.0.1:6379/0"
    assert "--config" not in nats_server.argv()
    assert str(redis_server.config_path) not in redis_server.argv()
    nats_server.prepare()
    assert not nats_server.config_path.exists()
