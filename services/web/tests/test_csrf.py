"""CSRF: a POST without a token of this browser's session, with a forged one or one
lifted from another session, or from another origin (scheme, host or port) is a 403
page and changes nothing."""

from __future__ import annotations

from urllib.parse import urlsplit
from uuid import uuid4

import pytest

from ticketing_common.settings import DEVELOPMENT_JWT_KEY, ServiceSettings
from ticketing_web import csrf

from .conftest import Browser, Stack


async def _listed(browser: Browser) -> int:
    return (await browser.get("/")).text.count('class="ticket-card"')


async def test_a_form_post_without_the_token_is_rejected_and_sells_nothing(
    browser: Browser,
) -> None:
    await browser.sign_up(f"{uuid4().hex}@example.com")
    response = await browser.http.post("/tickets/new", data={"title": "Gig", "price": "10"})
    assert response.status_code == 403
    assert "did not come from this site" in response.text
    assert await _listed(browser) == 0


async def test_a_token_signed_for_another_binding_is_rejected(browser: Browser) -> None:
    await browser.sign_up(f"{uuid4().hex}@example.com")
    other = csrf.new_token("pre-session:someone-else", ServiceSettings(ENVIRONMENT="test"))
    response = await browser.http.post(
        "/tickets/new", data={"csrf_token": other, "title": "Gig", "price": "10"}
    )
    assert response.status_code == 403
    assert await _listed(browser) == 0


async def test_a_token_lifted_from_another_session_is_rejected(stack: Stack) -> None:
    """An attacker's own valid token (from their session) does not work in a victim's."""
    attacker, victim = stack.browser(), stack.browser()
    await attacker.sign_up(f"{uuid4().hex}@example.com")
    await victim.sign_up(f"{uuid4().hex}@example.com")
    lifted = await attacker.token("/tickets/new")

    response = await victim.http.post(
        "/tickets/new", data={"csrf_token": lifted, "title": "Gig", "price": "10"}
    )

    assert response.status_code == 403
    assert await _listed(victim) == 0
    await attacker.aclose()
    await victim.aclose()


async def test_signing_in_reissues_the_token_and_the_anonymous_one_stops_working(
    browser: Browser,
) -> None:
    anonymous = await browser.token("/signin")
    await browser.sign_up(f"{uuid4().hex}@example.com")
    signed_in = await browser.token("/tickets/new")

    stale = await browser.http.post(
        "/tickets/new", data={"csrf_token": anonymous, "title": "Gig", "price": "10"}
    )
    fresh = await browser.http.post(
        "/tickets/new", data={"csrf_token": signed_in, "title": "Gig", "price": "10"}
    )

    assert signed_in != anonymous
    assert stale.status_code == 403
    assert fresh.status_code == 303
    assert await _listed(browser) == 1


async def test_a_pre_session_token_is_bound_to_its_browser(stack: Stack) -> None:
    """Before signing in, a token is bound to the browser's pre-session id (a login CSRF
    with the attacker's own token fails)."""
    attacker, victim = stack.browser(), stack.browser()
    lifted = await attacker.token("/signin")
    await victim.token("/signin")  # the victim has a pre-session of its own

    response = await victim.http.post(
        "/signup",
        data={"csrf_token": lifted, "email": f"{uuid4().hex}@example.com", "password": "pw-long-1"},
    )

    assert response.status_code == 403
    await attacker.aclose()
    await victim.aclose()


async def test_an_unsigned_token_in_both_cookie_and_form_is_rejected(browser: Browser) -> None:
    await browser.sign_up(f"{uuid4().hex}@example.com")
    forged = "attacker-chosen.0123456789abcdef"
    browser.http.cookies.set("csrf", forged)
    response = await browser.http.post(
        "/tickets/new", data={"csrf_token": forged, "title": "Gig", "price": "10"}
    )
    assert response.status_code == 403
    assert await _listed(browser) == 0


async def test_a_post_from_another_origin_is_rejected_even_with_a_valid_token(
    browser: Browser,
) -> None:
    await browser.sign_up(f"{uuid4().hex}@example.com")
    site = urlsplit(str(browser.http.base_url))
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Referer": "https://evil.example/page"},
        # The same host, another scheme or port: another origin.
        {"Origin": f"https://{site.netloc}"},
        {"Origin": f"http://{site.hostname}:{(site.port or 80) + 1}"},
        {"Referer": f"https://{site.netloc}/tickets/new"},
    ):
        response = await browser.submit(
            "/tickets/new", {"title": "Gig", "price": "10"}, form_page="/tickets/new", **headers
        )
        assert response.status_code == 403, headers
    assert await _listed(browser) == 0


async def test_behind_a_tls_gateway_the_origin_must_be_https(browser: Browser) -> None:
    """The gateway says the browser used https (X-Forwarded-Proto): an http origin of the
    same host is refused, the https one accepted."""
    await browser.sign_up(f"{uuid4().hex}@example.com")
    host = {"Host": "tickets.example", "X-Forwarded-Proto": "https"}

    plain = await browser.submit(
        "/tickets/new",
        {"title": "Gig", "price": "10"},
        form_page="/tickets/new",
        Origin="http://tickets.example",
        **host,
    )
    secure = await browser.submit(
        "/tickets/new",
        {"title": "Gig", "price": "10"},
        form_page="/tickets/new",
        Origin="https://tickets.example",
        **host,
    )

    assert plain.status_code == 403
    assert secure.status_code == 303
    assert await _listed(browser) == 1


async def test_a_same_site_post_with_the_token_is_accepted(browser: Browser) -> None:
    await browser.sign_up(f"{uuid4().hex}@example.com")
    origin = str(browser.http.base_url).rstrip("/")
    response = await browser.submit(
        "/tickets/new", {"title": "Gig", "price": "10"}, form_page="/tickets/new", Origin=origin
    )
    assert response.status_code == 303
    assert await _listed(browser) == 1


async def test_sign_out_without_the_token_keeps_the_visitor_signed_in(browser: Browser) -> None:
    await browser.sign_up(f"{uuid4().hex}@example.com")
    response = await browser.http.post("/signout")
    assert response.status_code == 403
    assert "set-cookie" not in {key.lower() for key in response.headers if "session" in key}
    assert "Sign out" in (await browser.get("/")).text


def test_tokens_are_signed_with_the_shared_key_for_one_binding() -> None:
    settings = ServiceSettings(ENVIRONMENT="test")
    other = ServiceSettings(ENVIRONMENT="test", JWT_KEY="x" * 40)
    token = csrf.new_token("session:abc", settings)
    assert settings.JWT_KEY == DEVELOPMENT_JWT_KEY
    assert csrf.is_valid(token, "session:abc", settings)
    assert not csrf.is_valid(token, "session:abd", settings)
    assert not csrf.is_valid(token, "session:abc", other)
    assert not csrf.is_valid(token.split(".")[0], "session:abc", settings)


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        ("https://Tickets.example", "https://tickets.example:443/page", True),
        ("http://tickets.example", "http://tickets.example:80", True),
        ("http://tickets.example", "https://tickets.example", False),
        ("https://tickets.example", "https://tickets.example:8443", False),
        ("https://tickets.example", "null", False),
    ],
)
def test_origins_compare_scheme_host_and_port(first: str, second: str, same: bool) -> None:
    assert (csrf.origin_of(first) == csrf.origin_of(second)) is same
