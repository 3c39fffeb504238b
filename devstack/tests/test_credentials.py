"""The passwords `ticketing up` keeps per data dir, and who gets which: each service its
own NATS user, Redis's password in REDIS_URL."""

from __future__ import annotations

import stat
from pathlib import Path

from ticketing_common.natsauth import ADMIN_USER
from ticketing_common.settings import BusSettings, EventServiceSettings, ServiceSettings
from ticketing_common.spec import CATCH_ALL, ServiceSpec
from ticketing_devstack.credentials import (
    CREDENTIALS_DIR,
    Credentials,
    stored_secret,
    with_credentials,
)
from ticketing_devstack.environment import Addresses, Shared, service_environments

AUTH = ServiceSpec(
    name="auth", package="p", title="t", settings=EventServiceSettings, api_prefix="/api/users"
)
WEB = ServiceSpec(name="web", package="p", title="t", settings=BusSettings, api_prefix=CATCH_ALL)
STATIC = ServiceSpec(name="static", package="p", title="t", settings=ServiceSettings)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_secret_is_made_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / CREDENTIALS_DIR / "redis"
    first = stored_secret(path)
    assert stored_secret(path) == first
    assert len(first) == 64
    assert mode(path) == 0o600
    assert mode(path.parent) == 0o700


def test_each_user_on_the_bus_gets_its_own_password_kept_in_the_data_dir(tmp_path: Path) -> None:
    credentials = Credentials(tmp_path)
    passwords = credentials.nats_passwords([AUTH, WEB, STATIC])
    assert set(passwords) == {ADMIN_USER, "auth", "web"}
    assert len(set(passwords.values())) == 3
    assert Credentials(tmp_path).nats_passwords([AUTH, WEB]) == passwords  # after a restart
    for user, password in passwords.items():
        path = tmp_path / CREDENTIALS_DIR / f"nats-{user}"
        assert path.read_text().strip() == password
        assert mode(path) == 0o600
    admin = credentials.admin_nats_url("nats://127.0.0.1:4222")
    assert admin == f"nats://admin:{passwords[ADMIN_USER]}@127.0.0.1:4222"


def test_the_admin_url_is_unchanged_before_any_password_was_made(tmp_path: Path) -> None:
    assert Credentials(tmp_path).admin_nats_url("nats://h:1") == "nats://h:1"
    assert not (tmp_path / CREDENTIALS_DIR).exists()


def test_with_credentials_replaces_any_given_in_the_url() -> None:
    assert with_credentials("nats://a:b@h:4222", "web", "pw") == "nats://web:pw@h:4222"


def test_each_service_on_the_bus_connects_as_its_own_user_and_redis_with_the_password() -> None:
    redis_url = "redis://:secret@127.0.0.1:6380/0"
    addresses = Addresses(
        gateway_url="http://127.0.0.1:8000",
        ports={"auth": 1, "web": 2, "static": 3},
        nats_url="nats://127.0.0.1:4222",
        redis_url=redis_url,
        nats_passwords={ADMIN_USER: "a", "auth": "p-auth", "web": "p-web"},
    )
    envs = service_environments(
        [AUTH, WEB, STATIC], {"NATS_PASSWORD": "callers"}, addresses, Shared(jwt_key="k" * 32)
    )
    assert (envs["auth"]["NATS_USER"], envs["auth"]["NATS_PASSWORD"]) == ("auth", "p-auth")
    assert (envs["web"]["NATS_USER"], envs["web"]["NATS_PASSWORD"]) == ("web", "p-web")
    assert "NATS_USER" not in envs["static"]
    assert envs["auth"]["REDIS_URL"] == redis_url
    # The operators' password goes to no service.
    assert all(env.get("NATS_PASSWORD") != "a" for env in envs.values())


def test_an_external_nats_gets_no_stack_made_credentials() -> None:
    addresses = Addresses(
        gateway_url="http://127.0.0.1:8000", ports={"web": 2}, nats_url="nats://x"
    )
    envs = service_environments([WEB], {}, addresses, Shared(jwt_key="k" * 32))
    assert "NATS_USER" not in envs["web"]
    assert "NATS_PASSWORD" not in envs["web"]
