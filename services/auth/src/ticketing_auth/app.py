"""The auth service's application: ``uvicorn --factory ticketing_auth.app:create_app``.

It publishes ``session:revoked`` through the shared outbox and relay, and listens
to nothing.
"""

from __future__ import annotations

from fastapi import FastAPI

from ticketing_auth.passwords import Passwords
from ticketing_auth.routes import router
from ticketing_auth.service import session_pruner
from ticketing_auth.settings import Settings
from ticketing_auth.throttle import AttemptLimits, SigninThrottle
from ticketing_common.app import Worker, create_event_service_app
from ticketing_common.db import Database

TITLE = "Ticketing auth"
# The gateway sends only /api/users/* to auth, so the docs are served there too.
DOCS_PREFIX = "/api/users"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    passwords = Passwords()
    attempt_limits = AttemptLimits.from_settings(settings)

    def throttle_pruner(database: Database) -> Worker:
        return SigninThrottle(database, settings).pruner()

    app = create_event_service_app(
        settings=settings,
        title=TITLE,
        routers=[router],
        docs_prefix=DOCS_PREFIX,
        on_startup=[passwords.prepare],
        workers=[throttle_pruner, session_pruner(settings)],
        on_shutdown=[attempt_limits.close],
    )
    app.state.passwords = passwords
    app.state.throttle = SigninThrottle(app.state.database, settings)
    app.state.attempt_limits = attempt_limits
    return app
