"""The auth service: ``uvicorn --factory ticketing_auth.app:create_app``.

Users sign up, sign in and out over HTTP; it publishes ``user:created`` and
``session:revoked`` through its outbox, and listens to nothing.
"""

from __future__ import annotations

from ticketing_auth.passwords import Passwords
from ticketing_auth.routes import router
from ticketing_auth.service import session_pruner
from ticketing_auth.settings import Settings
from ticketing_auth.throttle import AttemptLimits, SigninThrottle
from ticketing_common.events.contracts import SessionRevoked, UserCreated
from ticketing_common.spec import Parts, ServiceContext, ServiceSpec


def parts(context: ServiceContext[Settings]) -> Parts:
    settings = context.settings
    passwords = Passwords()
    attempt_limits = AttemptLimits.from_settings(settings)
    # One throttle: sign-ins count failures through it and its pruner clears them.
    throttle = SigninThrottle(context.database, settings)
    return Parts(
        provides=[passwords, attempt_limits, throttle],
        workers=[throttle.pruner(), session_pruner(context.database, settings)],
        on_startup=[passwords.prepare],
        on_shutdown=[attempt_limits.close],
    )


SPEC = ServiceSpec(
    name="auth",
    package="ticketing_auth",
    title="Ticketing auth",
    settings=Settings,
    api_prefix="/api/users",
    routers=[router],
    parts=parts,
    publishes=(UserCreated, SessionRevoked),
)
create_app = SPEC.create_app
