"""CSRF: a POST without this browser's signed token, with a forged one, or from another
site is a 403 page and changes nothing."""

from __future__ import annotations

from uuid import uuid4

from ticketing_common.settings import DEVELOPMENT_JWT_KEY, ServiceSettings
from ticketing_web import csrf

from .conftest import Browser


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


async def test_a_token_that_does_not_match_the_cookie_is_rejected(browser: Browser) -> None:
    await browser.sign_up(f"{uuid4().hex}@example.com")
    other = csrf.new_token(ServiceSettings(ENVIRONMENT="test"))
    response = await browser.http.post(
        "/tickets/new", data={"csrf_token": other, "title": "Gig", "price": "10"}
    )
    assert response.status_code == 403
    assert await _listed(browser) == 0


async def test_an_unsigned_token_in_both_cookie_and_form_is_rejected(browser: Browser) -> None:
    await browser.sign_up(f"{uuid4().hex}@example.com")
    forged = "attacker-chosen.0123456789abcdef"
    browser.http.cookies.set("csrf", forged)
    response = await browser.http.post(
        "/tickets/new", data={"csrf_token": forged, "title": "Gig", "price": "10"}
    )
    assert response.status_code == 403
    assert await _listed(browser) == 0


async def test_a_post_from_another_site_is_rejected_even_with_a_valid_token(
    browser: Browser,
) -> None:
    await browser.sign_up(f"{uuid4().hex}@example.com")
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Referer": "https://evil.example/page"},
    ):
        response = await browser.submit(
            "/tickets/new", {"title": "Gig", "price": "10"}, form_page="/tickets/new", **headers
        )
        assert response.status_code == 403, headers
    assert await _listed(browser) == 0


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


def test_tokens_are_signed_with_the_shared_key() -> None:
    settings = ServiceSettings(ENVIRONMENT="test")
    other = ServiceSettings(ENVIRONMENT="test", JWT_KEY="x" * 40)
    token = csrf.new_token(settings)
    assert settings.JWT_KEY == DEVELOPMENT_JWT_KEY
    assert csrf.is_valid(token, settings)
    assert not csrf.is_valid(token, other)
    assert not csrf.is_valid(token.split(".")[0], settings)
