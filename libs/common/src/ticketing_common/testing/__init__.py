"""Test support: real servers for tests, and helpers to serve an app over real HTTP.

The pytest plugin (``ticketing_common.testing.plugin``) is registered through an
entry point, so every test in the workspace gets its fixtures, among them the
spec-driven harness of ``ticketing_common.testing.service``: a conftest that defines
``service_spec`` gets settings, a migrated database, the served app and a client.
"""

from ticketing_common.testing.events import (
    published,
    published_so_far,
    revoke_session,
    tried_and_not_acked,
)
from ticketing_common.testing.helpers import (
    MakeMigratedDatabase,
    ServedApp,
    serve_app,
    signed_in_cookie,
    signed_in_headers,
    statements_of,
    wait_until,
)
from ticketing_common.testing.service import (
    EventsOf,
    MakeSettings,
    Serve,
    ServiceHarness,
    ServiceUnderTest,
    Users,
    serve_spec,
)

__all__ = [
    "EventsOf",
    "MakeMigratedDatabase",
    "MakeSettings",
    "Serve",
    "ServedApp",
    "ServiceHarness",
    "ServiceUnderTest",
    "Users",
    "published",
    "published_so_far",
    "revoke_session",
    "serve_app",
    "serve_spec",
    "signed_in_cookie",
    "signed_in_headers",
    "statements_of",
    "tried_and_not_acked",
    "wait_until",
]
