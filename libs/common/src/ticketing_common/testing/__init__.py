"""Test support: real servers for tests, and helpers to serve an app over real HTTP.

The pytest plugin (``ticketing_common.testing.plugin``) is registered through an
entry point, so every test in the workspace gets its fixtures.
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
    wait_until,
)

__all__ = [
    "MakeMigratedDatabase",
    "ServedApp",
    "published",
    "published_so_far",
    "revoke_session",
    "serve_app",
    "signed_in_cookie",
    "tried_and_not_acked",
    "wait_until",
]
