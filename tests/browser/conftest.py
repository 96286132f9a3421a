"""Browser tests: Debian's Chromium, driven by pytest-playwright, against pytest-django's live_server.

The browser is Debian's `chromium` package, never one fetched by `playwright install` (STACK.md). Where it
is missing the browser tests skip with the reason; on CI (CI=true) they fail, since there a missing
browser means a broken machine, not a choice.

Use `desktop_page` / `mobile_page` (or the contexts, for more than one page), `record_traffic(page)`
before navigating, `axe_check(page)` once the page is loaded and `screenshot(page, "name")` to keep a PNG
under var/test-artifacts/screenshots/ (git-ignored) for a person to look at.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    BrowserType,
    ConsoleMessage,
    Page,
    Playwright,
    Request,
    Response,
    sync_playwright,
)

# Playwright's sync API keeps an event loop in the test thread; Django refuses database calls from a
# thread with a running loop unless allowed. The calls stay synchronous, so allowing them is safe here.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
BASE_DIR = Path(__file__).resolve().parents[2]
SCREENSHOTS_DIR = BASE_DIR / "var" / "test-artifacts" / "screenshots"
AXE_JS = Path(__file__).parent / "vendor" / "axe.min.js"
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}
BLOCKING_IMPACTS = ("serious", "critical")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """pytest-playwright's launch options, pointed at Debian's Chromium."""
    if not CHROMIUM.exists():
        reason = (
            f"Debian's Chromium is not installed at {CHROMIUM}: run `apt-get install -y chromium` as root "
            "(never `playwright install`)"
        )
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return {
        "headless": True,
        **browser_type_launch_args,
        "executable_path": str(CHROMIUM),
        "args": CHROMIUM_ARGS,
    }


# pytest-playwright starts Playwright once per session, and its event loop then counts as running in the
# main thread until the session ends: asyncio.run() in any later test (pyHanko seals PDFs that way) fails
# with "cannot be called from a running event loop". These overrides give each module of browser tests its
# own Playwright and browser, stopped when the module is done; pytest-playwright's `new_context`,
# `context` and `page` (and its --headed, --slowmo, --screenshot, --tracing options) work on top of them.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser_type(playwright: Playwright, browser_name: str) -> BrowserType:
    return getattr(playwright, browser_name)


@pytest.fixture(scope="module")
def browser(browser_type: BrowserType, browser_type_launch_args: dict) -> Iterator[Browser]:
    browser = browser_type.launch(**browser_type_launch_args)
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def browser_context_args() -> dict:
    return {}


@pytest.fixture
def browser_urls(settings) -> None:
    """The project's URLs plus the test-only pages in tests/browser/urls_for_tests.py."""
    settings.ROOT_URLCONF = "tests.browser.urls_for_tests"


@pytest.fixture
def desktop_context(new_context) -> BrowserContext:
    return new_context(viewport={"width": 1280, "height": 900}, locale="en-GB")


@pytest.fixture
def mobile_context(new_context) -> BrowserContext:
    # A 390-px-wide phone (iPhone 12 to 15 size) with touch.
    return new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        locale="en-GB",
    )


@pytest.fixture
def desktop_page(desktop_context: BrowserContext) -> Page:
    return desktop_context.new_page()


@pytest.fixture
def mobile_page(mobile_context: BrowserContext) -> Page:
    return mobile_context.new_page()


@dataclass
class Traffic:
    """What a page asked for and what went wrong while it loaded."""

    requests: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # HTTP 4xx/5xx and requests that never completed
    console_errors: list[str] = field(default_factory=list)  # includes Content-Security-Policy refusals
    page_errors: list[str] = field(default_factory=list)  # uncaught JavaScript exceptions
    dialogs: list[str] = field(default_factory=list)  # alert()/confirm(): an injected script would show here

    def external(self) -> list[str]:
        return [
            url
            for url in self.requests
            if urlsplit(url).scheme in ("http", "https", "ws", "wss")
            and urlsplit(url).hostname not in LOCAL_HOSTS
        ]


def record_traffic(page: Page) -> Traffic:
    """Start listening before page.goto(); read the result after the page has loaded."""
    traffic = Traffic()

    def on_response(response: Response) -> None:
        if response.status >= 400:
            traffic.failures.append(f"{response.status} {response.url}")

    def on_failed(request: Request) -> None:
        traffic.failures.append(f"failed ({request.failure}) {request.url}")

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            traffic.console_errors.append(message.text)

    def on_dialog(dialog) -> None:
        traffic.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("request", lambda request: traffic.requests.append(request.url))
    page.on("response", on_response)
    page.on("requestfailed", on_failed)
    page.on("console", on_console)
    page.on("pageerror", lambda error: traffic.page_errors.append(str(error)))
    page.on("dialog", on_dialog)
    return traffic


def axe_check(page: Page, *, blocking: tuple[str, ...] = BLOCKING_IMPACTS) -> list[dict]:
    """Run axe-core on the page; fail on serious or critical violations, print the rest; return all.

    axe is evaluated through the DevTools protocol rather than page.add_script_tag(): an added <script> is
    inline and our pages' Content-Security-Policy (rightly) refuses to run it.
    """
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE_JS.read_text(encoding="utf-8"))
    results = page.evaluate(
        """async () => {
            const results = await axe.run(document, {resultTypes: ["violations"]});
            return results.violations.map(v => ({
                id: v.id, impact: v.impact, help: v.help, helpUrl: v.helpUrl,
                nodes: v.nodes.map(n => ({target: n.target.join(" "), summary: n.failureSummary})),
            }));
        }"""
    )
    for violation in results:
        if violation["impact"] not in blocking:
            print(f"axe ({violation['impact']}): {violation['id']}: {violation['help']}")  # noqa: T201
    serious = [v for v in results if v["impact"] in blocking]
    assert not serious, (
        "axe-core found serious problems on "
        + page.url
        + ":\n"
        + "\n".join(
            f"- {v['impact']} {v['id']}: {v['help']} ({v['helpUrl']})\n"
            + "\n".join(f"    {n['target']}: {n['summary']}" for n in v["nodes"])
            for v in serious
        )
    )
    return results


def screenshot(page: Page, name: str) -> Path:
    """A full-page PNG under var/test-artifacts/screenshots/, for a person to look at."""
    SCREENSHOTS_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
