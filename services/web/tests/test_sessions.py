"""Sessions through the web client (docs/sessions.md): a browser stays signed in across
token expiries while its session lives, renewing once per half-life, and is signed out
for good after signing out (here or on every device)."""

from __future__ import annotations

from collections.abc import Callable
from uuid import uuid4

import pytest

from ticketing_common.session import SessionToken, read_token
from ticketing_common.settings import ServiceSettings
from ticketing_common.testing import wait_until

from .conftest import PASSWORD, Browser, Stack, header_links

SIGNED_OUT = ["Sign up", "Sign in"]
SIGNED_IN = ["Sell tickets", "My listings", "My orders", "Check in", "Sign out"]
RENEW = "/api/users/session/renew"
# Every service of the test stack signs with the development key.
KEY = ServiceSettings(ENVIRONMENT="test")
SHORT_TOKENS = pytest.mark.parametrize("auth_settings", [{"SESSION_TOKEN_TTL_SECONDS": 2}])


def token_of(browser: Browser) -> SessionToken:
    content = read_token(browser.http.cookies["session"], KEY)
    assert content is not None
    return content


async def expire_token(browser: Browser) -> SessionToken:
    """Wait until the browser's session token has expired; its content."""
    token = token_of(browser)
    await wait_until(token.expired)
    return token


@SHORT_TOKENS
async def test_a_browser_stays_signed_in_across_token_expiry_in_the_same_session(
    stack: Stack, browser: Browser
) -> None:
    await browser.sign_up(f"{uuid4().hex}@example.com")
    old = await expire_token(browser)

    page = await browser.get("/orders")

    assert page.status_code == 200
    assert header_links(page.text) == SIGNED_IN
    new = token_of(browser)
    assert new.user == old.user  # same user and session, a later expiry
    assert new.expires_at > old.expires_at
    # The page's API call already carried the new token.
    orders_call = stack.seen.requests[stack.seen.paths.index("/api/orders")]
    assert browser.http.cookies["session"] in orders_call["cookie"]


@SHORT_TOKENS
async def test_a_token_is_renewed_once_per_half_life_not_per_page(
    stack: Stack, browser: Browser
) -> None:
    await browser.sign_up(f"{uuid4().hex}@example.com")
    await expire_token(browser)

    for _ in range(3):
        assert header_links((await browser.get("/")).text) == SIGNED_IN

    assert stack.seen.paths.count(RENEW) == 1


async def test_a_young_token_is_not_renewed(stack: Stack, browser: Browser) -> None:
    await browser.sign_up(f"{uuid4().hex}@example.com")

    await browser.get("/")
    await browser.get("/orders")

    assert RENEW not in stack.seen.paths


@SHORT_TOKENS
async def test_after_signing_out_the_old_cookie_is_signed_out_and_cleared(
    browser: Browser, make_browser: Callable[[], Browser]
) -> None:
    await browser.sign_up(f"{uuid4().hex}@example.com")
    stolen = browser.http.cookies["session"]
    await browser.submit("/signout", {}, form_page="/")
    thief = make_browser()
    thief.http.cookies.set("session", stolen)
    await expire_token(thief)

    page = await thief.get("/orders")

    assert page.status_code == 303  # to sign in: auth refused to renew the session
    [cleared] = [h for h in page.headers.get_list("set-cookie") if h.startswith("session=")]
    assert "max-age=0" in cleared.lower()  # and the browser is told to forget it
    assert header_links((await thief.get("/")).text) == SIGNED_OUT


# Three password hashes run before the sign-out: on a busy machine a 2 s token can
# expire between the page's renewal check and the APIs it calls, which then see a
# signed-out visitor. Short enough to wait out at the end, long enough for that.
@pytest.mark.parametrize("auth_settings", [{"SESSION_TOKEN_TTL_SECONDS": 6}])
async def test_signing_out_everywhere_signs_out_every_browser_of_the_account_only(
    browser: Browser, make_browser: Callable[[], Browser]
) -> None:
    email = f"{uuid4().hex}@example.com"
    await browser.sign_up(email)
    laptop = make_browser()
    await laptop.submit("/signin", {"email": email, "password": PASSWORD})
    someone_else = make_browser()
    await someone_else.sign_up(f"{uuid4().hex}@example.com")

    response = await browser.submit("/signout/everywhere", {}, form_page="/")

    assert (response.status_code, response.headers["location"]) == (303, "/")
    assert header_links((await browser.get("/")).text) == SIGNED_OUT
    await expire_token(laptop)
    await expire_token(someone_else)
    assert header_links((await laptop.get("/")).text) == SIGNED_OUT
    assert header_links((await someone_else.get("/")).text) == SIGNED_IN


@SHORT_TOKENS
async def test_signing_in_with_an_expired_token_keeps_the_new_session_not_the_renewed_one(
    stack: Stack, browser: Browser, make_browser: Callable[[], Browser]
) -> None:
    other = f"{uuid4().hex}@example.com"
    await make_browser().sign_up(other)
    await browser.sign_up(f"{uuid4().hex}@example.com")
    csrf = await browser.token("/signin")
    old = await expire_token(browser)  # so the post itself renews it first

    response = await browser.http.post(
        "/signin", data={"csrf_token": csrf, "email": other, "password": PASSWORD}
    )

    assert response.status_code == 303
    assert RENEW in stack.seen.paths
    # One session cookie: the sign-in's, not also the renewal's.
    [_] = [h for h in response.headers.get_list("set-cookie") if h.startswith("session=")]
    new = token_of(browser)
    assert new.user.email == other
    assert new.user.sid != old.user.sid


async def test_pages_of_a_signed_in_visitor_offer_signing_out_on_every_device(
    browser: Browser,
) -> None:
    assert 'action="/signout/everywhere"' not in (await browser.get("/")).text
    await browser.sign_up(f"{uuid4().hex}@example.com")

    page = await browser.get("/")

    assert 'action="/signout/everywhere"' in page.text
    assert "Sign out on every device" in page.text
