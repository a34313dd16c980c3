"""Browser tests: Debian's Chromium, driven by Playwright, against the real service.

The service runs as it does at the till (the app under waitress, on 127.0.0.1 and a free port),
on SQLite only, to keep the run short. With CI=true a missing Chromium or Playwright fails the
run instead of skipping it.
"""
from __future__ import annotations

import os
import shutil
import threading
from dataclasses import dataclass
from typing import Any

import pytest

from tests.browser.screens import screenshots_directory
from tests.conftest import IN_CI

CHROMIUM = os.environ.get("POS_LOYALTY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # the tests run as root
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-gpu",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
SCREEN_SIZE = {"width": 1280, "height": 800}  # a common till screen
WAIT_MS = 10_000  # how long Playwright's auto-waiting may wait for the page to show something


def _unavailable(message: str):
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture
def database_url(tmp_path, sqlite_template) -> str:
    """SQLite only: the browser journeys are about the screens, not the database."""
    target = tmp_path / "loyalty.db"
    shutil.copyfile(sqlite_template, target)
    return f"sqlite:///{target}"


@dataclass
class LiveServer:
    url: str
    app: Any
    server: Any
    thread: threading.Thread

    @property
    def shop(self):
        return self.app.extensions["pos_loyalty"].shop

    @property
    def web(self):
        return self.app.extensions["pos_loyalty_web"]

    def stop(self) -> None:
        from waitress import wasyncore

        self.web.stop()  # the scanner, and every open scan stream
        try:
            self.server.trigger.pull_trigger(lambda: wasyncore.close_all(self.server._map))
        except OSError:  # the loop woke for another reason and already ran the thunk, trigger and all
            pass
        self.thread.join(10)
        self.server.task_dispatcher.shutdown(timeout=10)


@pytest.fixture
def live_server(app):
    """The app served by waitress on 127.0.0.1, as ``pos-loyalty serve`` serves it."""
    from waitress import create_server

    app.extensions["pos_loyalty_web"].pause = lambda seconds: None  # the slow-down is tested in test_web_auth
    server = create_server(app, host="127.0.0.1", port=0, threads=4, ident="pos-loyalty")
    thread = threading.Thread(target=server.run, name="waitress", daemon=True)
    thread.start()
    live = LiveServer(f"http://127.0.0.1:{server.effective_port}", app, server, thread)
    yield live
    live.stop()


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        _unavailable(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed (pip install playwright)")
    expect.set_options(timeout=WAIT_MS)
    screenshots_directory()  # (made if missing)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, live_server):
    context = browser.new_context(base_url=live_server.url, viewport=SCREEN_SIZE, locale="en-GB")
    context.set_default_timeout(WAIT_MS)
    tab = context.new_page()
    yield tab
    context.close()
