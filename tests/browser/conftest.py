"""Browser tests: Debian's real Chromium (headless) drives the web SDK against the running
stack, from a page served on ANOTHER origin than sync, as on a customer's site.

Fixtures: `page_server` (the other origin), `browser` (a fresh Chromium per test, wrapped
in `Browser`: open the test page, `init` the SDK for a contact of the `app` fixture, tabs,
waits, recorded SDK events, screenshots), and `operator` (tests/e2e/conftest.py).

Nothing here downloads a browser or a driver: chromium and chromedriver come from apt
(`make test` runs `bash deploy/local/stack.sh install browser`), the driver path is given
(so Selenium Manager is skipped; it is also made to fail if anything calls it) and
SE_OFFLINE=true is set for good measure.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.selenium_manager import SeleniumManager
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from tests.conftest import REPO, SYNC_URL, device_token
from tests.e2e.conftest import Operator, operator  # noqa: F401  (fixture)

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PAGES = Path(__file__).resolve().parent / "pages"
STATE_DIR = Path(os.environ.get("PIGEONHOLE_STATE_DIR") or REPO / ".stack")
SCREENSHOTS = STATE_DIR / "screenshots"
DOC_IMAGES = REPO / "docs" / "img"
WAIT_S = 15.0
VIEWPORT = (1280, 800)

# Chromium's own noise, never the SDK's: the icon request (the pages declare none, this is
# for pages that forget) is the only one known.
IGNORED_CONSOLE = [re.compile(r"/favicon\.ico - Failed to load resource")]

# The SDK's events, recorded into window.__phEvents by Browser.init.
SDK_EVENTS = [
    "sync",
    "inbox",
    "connection",
    "error",
    "inapp:view",
    "inapp:click",
    "inapp:dismiss",
    "inbox:action",
]

_RECORD_EVENTS = """
const types = arguments[0];
window.__phEvents = [];
for (const type of types) {
  window.Pigeonhole.on(type, (detail) => {
    let copy;
    try {
      copy = JSON.parse(JSON.stringify(detail ?? null, (key, value) =>
        value instanceof Error ? {name: value.name, message: value.message,
                                  status: value.status} : value));
    } catch (error) {
      copy = {unserializable: String(error)};
    }
    window.__phEvents.push({type, detail: copy});
  });
}
"""

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- the other origin


class _PageHandler(SimpleHTTPRequestHandler):
    """Serves tests/browser/pages; `__SYNC_URL__` in an .html file becomes sync's URL."""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path.endswith(".html"):
            file = PAGES / path.lstrip("/")
            if file.resolve().parent != PAGES or not file.is_file():
                self.send_error(404)
                return
            body = file.read_text().replace("__SYNC_URL__", SYNC_URL).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)
            return
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("page server: " + format, *args)


@pytest.fixture(scope="session")
def page_server() -> Iterator[str]:
    """http://127.0.0.1:<free port>: an origin other than sync's (CORS is exercised)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_PageHandler, directory=str(PAGES)))
    thread = threading.Thread(target=server.serve_forever, name="page-server", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


# --------------------------------------------------------------------------- screenshots


def screenshot(target: WebDriver | WebElement, name: str) -> Path:
    """A PNG of the page (driver) or of one element, always in .stack/screenshots/<name>.png;
    also docs/img/web-sdk-<name>.png when PIGEONHOLE_UPDATE_SCREENSHOTS=1 (make screenshots)."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", name):
        raise ValueError(f"screenshot name {name!r}: use lowercase letters, digits and dashes")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    png = (
        target.screenshot_as_png
        if isinstance(target, WebElement)
        else target.get_screenshot_as_png()
    )
    path.write_bytes(png)
    if os.environ.get("PIGEONHOLE_UPDATE_SCREENSHOTS") == "1":
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOC_IMAGES / f"web-sdk-{name}.png")
    return path


# --------------------------------------------------------------------------- the browser


def _chromium_options(profile: Path) -> webdriver.ChromeOptions:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}",
        f"--user-data-dir={profile}",  # a fresh profile: no localStorage from another test
        "--no-sandbox",  # root in CI containers
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--force-device-scale-factor=1",
        "--force-prefers-reduced-motion",  # no entry animations: screenshots show the end state
        "--hide-scrollbars",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return options


def _start_chromium(profile: Path) -> webdriver.Chrome:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        pytest.fail(
            f"browser tests need Debian's chromium and chromium-driver ({', '.join(missing)} "
            "missing): `make test` installs them, or run "
            "`bash deploy/local/stack.sh install browser` (apt-get, as root)",
            pytrace=False,
        )
    os.environ["SE_OFFLINE"] = "true"
    refuse = AssertionError("Selenium Manager must not run: it may download a driver")
    with mock.patch.object(SeleniumManager, "binary_paths", side_effect=refuse):
        driver = webdriver.Chrome(
            service=Service(executable_path=CHROMEDRIVER), options=_chromium_options(profile)
        )
    # new headless counts a window's (invisible) frame: make the page itself 1280x800
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    size = driver.get_window_size()
    driver.set_window_size(
        size["width"] + VIEWPORT[0] - inner[0], size["height"] + VIEWPORT[1] - inner[1]
    )
    return driver


class Browser:
    """One headless Chromium (fresh profile) on the test page; the SDK on the other origin."""

    def __init__(self, driver: webdriver.Chrome, page_server: str, app: dict[str, str]) -> None:
        self.driver, self.page_server, self.app = driver, page_server, app
        self.console: list[dict[str, Any]] = []
        self.expected_console: list[re.Pattern[str]] = []

    # pages and tabs

    def open(self, page: str = "module.html") -> None:
        """Open a test page (tests/browser/pages: module.html loads pigeonhole.mjs,
        classic.html pigeonhole.js) and wait until window.Pigeonhole exists."""
        self.driver.get(f"{self.page_server}/{page}")
        self.until(
            lambda d: d.execute_script("return typeof window.Pigeonhole === 'object'"),
            f"window.Pigeonhole on {page} (the SDK did not load from {SYNC_URL})",
        )

    def new_tab(self, page: str = "module.html") -> str:
        """Open the page in a second tab (same profile: same localStorage) and switch to it;
        returns the tab's handle (switch back with `switch_to(handle)`)."""
        self.collect_console()
        self.driver.switch_to.new_window("tab")
        self.open(page)
        return self.driver.current_window_handle

    def switch_to(self, handle: str) -> None:
        self.collect_console()
        self.driver.switch_to.window(handle)

    # the SDK

    def token(self, contact_id: str, ttl: int = 600, app: dict[str, str] | None = None) -> str:
        return device_token((app or self.app)["appSecret"], contact_id, ttl=ttl)

    def init(self, contact_id: str, app: dict[str, str] | None = None, **options: Any) -> None:
        """`Pigeonhole.init({appKey, token, baseUrl})` for a contact of the `app` fixture (or
        of `app`; extra options are passed along), then record the SDK's events (`events()`)."""
        app = app or self.app
        init = {
            "appKey": app["appKey"],
            "token": self.token(contact_id, app=app),
            "baseUrl": SYNC_URL,
            **options,
        }
        self.js("window.Pigeonhole.init(arguments[0]);", init)
        self.js(_RECORD_EVENTS, SDK_EVENTS)

    def events(self, type: str | None = None) -> list[Any]:
        """The details of the SDK events recorded since `init` (of one type, or all as
        {type, detail})."""
        recorded: list[dict[str, Any]] = self.js("return window.__phEvents || [];")
        if type is None:
            return recorded
        return [event["detail"] for event in recorded if event["type"] == type]

    def wait_event(
        self, type: str, where: Callable[[Any], bool] = lambda _: True, timeout: float = WAIT_S
    ) -> Any:
        """Wait for a recorded SDK event (whose detail satisfies `where`); returns its detail."""
        found: list[Any] = []

        def seen(_: WebDriver) -> bool:
            found[:] = [detail for detail in self.events(type) if where(detail)]
            return bool(found)

        try:
            self.until(seen, f"a {type!r} event from the SDK", timeout)
        except TimeoutException as exc:  # say what the SDK did say
            calls = self.js(
                "return performance.getEntriesByType('resource')"
                ".map((e) => `${e.name} ${e.responseStatus} ${Math.round(e.duration)}ms`);"
            )
            raise TimeoutException(
                f"{exc.msg}; it emitted: {self.events()!r:.2000}; calls: {calls!r:.2000}"
            ) from None
        return found[0]

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def local_storage(self) -> dict[str, str]:
        items: dict[str, str] = self.js(
            "return Object.fromEntries(Object.keys(localStorage)"
            ".map((k) => [k, localStorage.getItem(k)]));"
        )
        return items

    # waits

    def until(
        self, condition: Callable[[WebDriver], Any], what: str, timeout: float = WAIT_S
    ) -> Any:
        # a widget re-renders its list: an element found may be replaced before it is read
        return WebDriverWait(
            self.driver,
            timeout,
            poll_frequency=0.1,
            ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
        ).until(condition, f"waited {timeout:g}s for {what}")

    def wait_for(
        self, selector: str, text: str | None = None, timeout: float = WAIT_S
    ) -> WebElement:
        """The first visible element matching the CSS selector (whose text contains `text`)."""

        def found(driver: WebDriver) -> WebElement | bool:
            for element in driver.find_elements(By.CSS_SELECTOR, selector):
                if element.is_displayed() and (text is None or text in element.text):
                    return element
            return False

        what = f"{selector!r}" + (f" showing {text!r}" if text is not None else "")
        element: WebElement = self.until(found, what, timeout)
        return element

    def wait_gone(self, selector: str, timeout: float = WAIT_S) -> None:
        self.until(
            lambda d: not any(e.is_displayed() for e in d.find_elements(By.CSS_SELECTOR, selector)),
            f"{selector!r} to go away",
            timeout,
        )

    def screenshot(self, name: str, target: WebElement | None = None) -> Path:
        return screenshot(target if target is not None else self.driver, name)

    # the console

    def expect_console(self, pattern: str) -> None:
        """A SEVERE console message this test provokes on purpose (a regex)."""
        self.expected_console.append(re.compile(pattern))

    def collect_console(self) -> None:
        """Move the current tab's console log into `self.console` (chromedriver keeps it per
        tab and hands each entry out once)."""
        try:
            self.console += self.driver.get_log("browser")  # type: ignore[no-untyped-call]
        except Exception:  # the tab is gone
            log.debug("no console log for this tab", exc_info=True)

    def console_errors(self) -> list[str]:
        """The SEVERE console messages nobody expected (on every tab)."""
        current = self.driver.current_window_handle
        for handle in self.driver.window_handles:
            self.driver.switch_to.window(handle)
            self.collect_console()
        self.driver.switch_to.window(current)
        errors = []
        for entry in self.console:
            message = str(entry.get("message", ""))
            if entry.get("level") != "SEVERE":
                continue
            if any(p.search(message) for p in IGNORED_CONSOLE + self.expected_console):
                continue
            errors.append(f"[{entry.get('source', '?')}] {message}")
        return errors


@pytest.fixture
def browser(
    page_server: str, app: dict[str, str], tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Browser]:
    """A fresh headless Chromium (1280x800, new profile); fails the test on SEVERE console
    errors it did not expect; a screenshot of the page when the test failed."""
    driver = _start_chromium(tmp_path / "profile")
    session = Browser(driver, page_server, app)
    try:
        yield session
        errors = session.console_errors()
        if errors:
            pytest.fail("browser console errors:\n" + "\n".join(errors), pytrace=False)
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed:
            try:
                name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                driver.save_screenshot(str(SCREENSHOTS / f"failed-{name}.png"))
            except Exception:
                log.debug("no screenshot of the failure", exc_info=True)
        driver.quit()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item, so `browser` knows the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


__all__ = ["Browser", "Operator", "screenshot"]
