"""The auth service's application: ``uvicorn --factory ticketing_auth.app:create_app``."""

from __future__ import annotations

from fastapi import FastAPI

from ticketing_auth.passwords import Passwords
from ticketing_auth.routes import router
from ticketing_auth.settings import Settings
from ticketing_auth.throttle import AttemptLimits, SigninThrottle
from ticketing_common.app import ServiceRuntime, create_service_app
from ticketing_common.db import Database

TITLE = "Ticketing auth"
# The gateway sends only /api/users/* to auth, so the docs are served there too.
DOCS_PREFIX = "/api/users"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    database = Database(settings.DATABASE_URL, pool_size=settings.DATABASE_POOL_SIZE)
    passwords = Passwords()
    throttle = SigninThrottle(database, settings)
    attempt_limits = AttemptLimits.from_settings(settings)
    runtime = ServiceRuntime(
        database=database,
        on_startup=[passwords.prepare],
        on_shutdown=[attempt_limits.close],
        workers=[throttle.prune_periodically],
    )
    app = create_service_app(
        settings=settings,
        title=TITLE,
        routers=[router],
        runtime=runtime,
        docs_prefix=DOCS_PREFIX,
    )
    app.state.passwords = passwords
    app.state.throttle = throttle
    app.state.attempt_limits = attempt_limits
    return app
