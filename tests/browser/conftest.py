"""What the browser tests share: the whole system started once with `ticketing up` (a short
expiration window), Debian's Chromium driven by Playwright, and the screenshot folder."""

from __future__ import annotations

import importlib.util
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    ViewportSize,
    sync_playwright,
)

from tests.e2e.conftest import PASSWORD, UP_TIMEOUT, Stack

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SERVICES = ("auth", "tickets", "orders", "payments", "expiration", "web")
MISSING = [name for name in SERVICES if importlib.util.find_spec(f"ticketing_{name}.app") is None]
# Long enough to pay in a journey, short enough to watch an order expire.
EXPIRATION_WINDOW_SECONDS = 25
# Every journey of the module signs up from 127.0.0.1 on one stack: the per-client
# sign-up limit is raised for it (docs/security.md, "Throttles").
RATE_LIMITS = {"SIGNUP_RATE_PER_CLIENT": "1000/hour"}
VIEWPORT: ViewportSize = {"width": 1280, "height": 800}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if CHROMIUM is None:
        pytest.skip("no chromium binary on PATH (install Debian's chromium package)")
    if MISSING:
        pytest.skip(f"services not installed yet: {', '.join(MISSING)}")
    started = Stack(
        tmp_path_factory.mktemp("browser") / "data",
        extra_args=("--expiration-window", str(EXPIRATION_WINDOW_SECONDS)),
        env=RATE_LIMITS,
    )
    try:
        started.wait_until_up(UP_TIMEOUT)
        yield started
    finally:
        started.stop()


# Module scope, not session: Playwright's sync API runs an event loop in the main
# thread while it is open, and async tests collected after this module need none.
@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def chromium(stack: Stack, playwright_driver: Playwright) -> Iterator[Browser]:
    assert CHROMIUM is not None
    browser = playwright_driver.chromium.launch(executable_path=CHROMIUM)
    try:
        yield browser
    finally:
        browser.close()


OpenContext = Callable[..., BrowserContext]


@pytest.fixture
def new_context(chromium: Browser, stack: Stack) -> Iterator[OpenContext]:
    """Open fresh browser contexts (separate cookie jars: separate people) on the stack."""
    contexts: list[BrowserContext] = []

    def open_context(*, javascript: bool = True) -> BrowserContext:
        context = chromium.new_context(
            base_url=stack.url, viewport=VIEWPORT, java_script_enabled=javascript
        )
        context.set_default_timeout(30_000)
        contexts.append(context)
        return context

    yield open_context
    for context in contexts:
        context.close()


def new_email() -> str:
    return f"{uuid.uuid4().hex[:12]}@example.com"


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def sign_up(page: Page, email: str, *, shot: str | None = None) -> None:
    page.goto("/signup")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    if shot:
        screenshot(page, shot)
    page.click("button:has-text('Sign up')")
    page.wait_for_url("**/")
    assert page.locator("nav >> text=Sign out").is_visible()


def sell(page: Page, title: str, price: str, *, shot: str | None = None) -> str:
    """List a ticket through the form; returns its id (from the page it lands on)."""
    page.goto("/tickets/new")
    page.fill("#title", title)
    page.fill("#price", price)
    if shot:
        screenshot(page, shot)
    page.click("button:has-text('List ticket')")
    page.wait_for_url("**/tickets/*-*")
    return page.url.rsplit("/", 1)[-1]
