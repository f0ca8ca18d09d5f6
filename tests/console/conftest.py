"""Fixtures for the console's browser tests: headless Chromium, a seeded bank on a real
SQLite file, and consoles serving it (read-only, and with commands allowed).

Everything started here is stopped here: pages and contexts after each test, the servers,
their loop and the browser at the end of the session.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from console_seed import Seeded, seed_bank
from console_support import LoopThread, ServedConsole
from playwright.sync_api import Browser, Page, expect, sync_playwright
from starlette.applications import Starlette

import eventactors as ea
from eventactors import inspection
from eventactors.console import create_app
from eventactors.console.server import console_engine

CHROMIUM = "/usr/bin/chromium"
BANK_APP = "eventactors_examples.bank.app:build_engine"
SAMPLE_INTERVAL = 0.2

expect.set_options(timeout=5_000)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Per module, not per session: while Playwright's sync API is open its loop counts as
    # running on this thread, and every asyncio test collected after the console's would fail.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def browser_page(browser: Browser, **context_options: Any) -> Iterator[Page]:
    """A page in a fresh browser context; a script error on any page fails the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, **context_options)
    context.set_default_timeout(5_000)
    page = context.new_page()
    script_errors: list[str] = []
    page.on("pageerror", lambda error: script_errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
    assert script_errors == [], script_errors


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with browser_page(browser) as page:
        yield page


@pytest.fixture(scope="session")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    try:
        yield thread
    finally:
        thread.close()


@pytest.fixture(scope="session")
def bank_db(tmp_path_factory: pytest.TempPathFactory, loop: LoopThread) -> tuple[Path, Seeded]:
    path = tmp_path_factory.mktemp("console") / "bank.db"
    seeded = loop.run(seed_bank(ea.SQLiteStore(path)))
    return path, seeded


async def bank_console(
    store: ea.Store, *, with_engine: bool = True, allow_commands: bool = False
) -> Starlette:
    """The console as `eventactors serve --app <bank>` builds it."""
    engine = (
        await console_engine(await inspection.load_app(BANK_APP, store)) if with_engine else None
    )
    return create_app(
        store, engine=engine, allow_commands=allow_commands, sample_interval=SAMPLE_INTERVAL
    )


@pytest.fixture(scope="session")
def console(loop: LoopThread, bank_db: tuple[Path, Seeded]) -> Iterator[str]:
    """The URL of a read-only console with the bank app."""
    app = loop.run(bank_console(ea.SQLiteStore(bank_db[0])))
    served = ServedConsole(loop, app)
    try:
        yield served.url
    finally:
        served.stop()


@pytest.fixture
def commands_served(tmp_path: Path, loop: LoopThread) -> Iterator[ServedConsole]:
    """A console started with --allow-commands, on a bank of its own (commands change it)."""
    path = tmp_path / "bank.db"
    loop.run(seed_bank(ea.SQLiteStore(path)))
    app = loop.run(bank_console(ea.SQLiteStore(path), allow_commands=True))
    served = ServedConsole(loop, app, store_path=path)
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture
def commands_console(commands_served: ServedConsole) -> str:
    """The URL of a console started with --allow-commands."""
    return commands_served.url
