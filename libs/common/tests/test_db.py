"""Database helpers: URL forms and the Alembic configuration of a service's migrations."""

from __future__ import annotations

from ticketing_common.db import alembic_config, asyncpg_url, plain_url

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
