"""What the browser tests share: the whole system started once with `ticketing up` (a short
expiration window), Debian's Chromium driven by Playwright (with a fake camera that films
what ``show_to_camera`` puts in front of it), and the screenshot folder."""

from __future__ import annotations

import importlib.util
import io
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    ViewportSize,
    sync_playwright,
)

from tests.e2e.conftest import PASSWORD, UP_TIMEOUT, Stack
from ticketing_common.eticket import qr_png

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SERVICES = ("auth", "tickets", "orders", "payments", "expiration", "notifications", "web")
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
def camera_film(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The file Chromium's fake camera plays; Chromium opens it when a page starts the
    camera, so it may be written after the browser started."""
    return tmp_path_factory.mktemp("camera") / "film.y4m"


@pytest.fixture(scope="module")
def chromium(stack: Stack, playwright_driver: Playwright, camera_film: Path) -> Iterator[Browser]:
    assert CHROMIUM is not None
    browser = playwright_driver.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={camera_film}",
        ],
    )
    try:
        yield browser
    finally:
        browser.close()


def show_to_camera(camera_film: Path, text: str, *, width: int = 640, height: int = 480) -> None:
    """Film ``text`` as a QR code (the e-ticket's own rendering) for the fake camera:
    a few frames of raw video (YUV4MPEG2, 4:2:0, grey), which Chromium loops."""
    code = Image.open(io.BytesIO(qr_png(text, scale=1))).convert("L")
    # Whole pixels per module, all inside the middle two thirds of the frame: the part
    # the scanner reads (qr-scanner's default scan region).
    module = (min(width, height) * 2 // 3 - 16) // code.width
    side = code.width * module
    frame = Image.new("L", (width, height), 255)
    placed = ((width - side) // 2, (height - side) // 2)
    frame.paste(code.resize((side, side), Image.Resampling.NEAREST), placed)
    grey = bytes([128]) * (width // 2 * height // 2)  # no colour: U and V at their middle
    header = f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode()
    camera_film.write_bytes(header + (b"FRAME\n" + frame.tobytes() + grey + grey) * 3)


def mailbox_url(stack: Stack) -> str | None:
    """The local mailbox's page, as `ticketing up` printed it (``Mail: <url>``)."""
    for line in stack.lines:
        found = re.search(r"\bMail: (https?://\S+)", line)
        if found:
            return found.group(1)
    return None


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


def sell(page: Page, title: str, price: str, *, quantity: str = "", shot: str | None = None) -> str:
    """List a ticket (or, with a quantity, a general-admission listing) through the
    form; returns its id (from the page it lands on)."""
    page.goto("/tickets/new")
    page.fill("#title", title)
    page.fill("#price", price)
    if quantity:
        page.fill("#quantity", quantity)
    if shot:
        screenshot(page, shot)
    page.click("button:has-text('List ticket')")
    page.wait_for_url("**/tickets/*-*")
    return page.url.rsplit("/", 1)[-1]
