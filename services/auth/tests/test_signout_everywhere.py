"""POST /api/users/signout/everywhere: every live session of the user is revoked, one
session:revoked each, and no other user's (docs/sessions.md)."""

from __future__ import annotations

import httpx

from ticketing_auth.settings import Settings
from ticketing_common.events.contracts import Envelope, SessionRevoked
from ticketing_common.testing import signed_in_cookie, wait_until

from .conftest import EventsOf
from .test_session import current_user, read, sign_in, sign_up


async def revocations(events_of: EventsOf, count: int) -> list[Envelope[SessionRevoked]] | None:
    """The session:revoked events so far, once there are at least ``count``."""
    found = await events_of(SessionRevoked)
    return found if len(found) >= count else None


async def test_signout_everywhere_revokes_every_session_of_the_user_and_only_theirs(
    client: httpx.AsyncClient, settings: Settings, events_of: EventsOf
) -> None:
    ann = [await sign_up(client), await sign_in(client), await sign_in(client)]
    bob = await sign_up(client, "bob@example.com")
    client.cookies.set("session", ann[1])

    response = await client.post("/api/users/signout/everywhere")

    assert (response.status_code, response.json()) == (200, {"revokedSessions": 3})
    [cleared] = [h for h in response.headers.get_list("set-cookie") if h.startswith("session=")]
    assert "max-age=0" in cleared.lower()
    for token in ann:
        assert await current_user(client, token) is None
    assert await current_user(client, bob) is not None
    events = await wait_until(lambda: revocations(events_of, 3))
    published = {event.data.id: event.data for event in events}
    assert len(events) == len(published) == 3
    for claims in (read(raw, settings) for raw in ann):
        assert published[claims.user.sid].user_id == claims.user.id
        assert published[claims.user.sid].expires_at == claims.expires_at


async def test_signout_everywhere_skips_sessions_already_signed_out(
    client: httpx.AsyncClient, settings: Settings, events_of: EventsOf
) -> None:
    first = await sign_up(client)
    await client.post("/api/users/signout")
    second = await sign_in(client)
    client.cookies.set("session", second)

    response = await client.post("/api/users/signout/everywhere")

    assert response.json() == {"revokedSessions": 1}
    events = await wait_until(lambda: revocations(events_of, 2))
    assert [event.data.id for event in events] == [
        read(first, settings).user.sid,
        read(second, settings).user.sid,
    ]


async def test_signout_everywhere_needs_a_live_session(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    revoked = await sign_up(client)
    await client.post("/api/users/signout")
    still_signed_in = await sign_in(client)

    for token in (None, revoked, signed_in_cookie(settings)["session"]):
        client.cookies.clear()
        if token is not None:
            client.cookies.set("session", token)
        response = await client.post("/api/users/signout/everywhere")
        assert response.status_code == 401, token

    # A revoked session's token signed nobody out.
    assert await current_user(client, still_signed_in) is not None
