"""The real `eventactors serve` command in a subprocess, and the console on PostgreSQL."""

from __future__ import annotations

import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import bank_console
from console_seed import seed_bank
from console_support import LoopThread, ServedConsole
from playwright.sync_api import Page, expect
from postgres_support import DSN, drop_schema, new_schema_name

import eventactors as ea

EVENTACTORS = str(Path(sys.executable).parent / "eventactors")
STARTED = re.compile(r"Uvicorn running on (http://127\.0\.0\.1:(\d+))")


class ServeProcess:
    """`eventactors serve` with its output read on a thread, so that waits keep a deadline."""

    def __init__(self, *arguments: str) -> None:
        self.process = subprocess.Popen(
            [EVENTACTORS, "serve", *arguments],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 15.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                raise AssertionError(f"serve exited: {''.join(self.output)}")
            self.output.append(line)
            if found := pattern.search(line):
                return found
        raise AssertionError(f"no {pattern.pattern!r} within {timeout}s: {''.join(self.output)}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._reader.join(timeout=10)
        assert self.process.stdout is not None
        self.process.stdout.close()
        return self.process.returncode


def listening_addresses(port: int) -> set[str]:
    """The local addresses listening on `port`, from the kernel's own table."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_eventactors_serve_binds_loopback_and_serves_the_home_page(
    page: Page, bank_db: tuple[Path, object]
) -> None:
    serve = ServeProcess("--store", str(bank_db[0]), "--port", "0")
    try:
        url, port = serve.wait_for(STARTED).groups()
        assert listening_addresses(int(port)) == {"0100007F"}  # 127.0.0.1, and nothing else
        page.goto(url)
        expect(page.get_by_role("heading", name="Streams")).to_be_visible()
        expect(page.get_by_text("read-only", exact=True)).to_be_visible()
        page.get_by_role("link", name="account|acc-3").click()
        expect(page.get_by_role("heading", name="account|acc-3")).to_be_visible()
        expect(page.get_by_text("State needs --app")).to_be_visible()
    finally:
        assert serve.stop() == 0, "".join(serve.output)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--store", "missing.db"], "eventactors serve: no such store: missing.db"),
        (["--store", "{db}", "--allow-commands"], "--allow-commands needs --app"),
        (["--store", "{db}", "--app", "no_such_module:engine"], "cannot load app"),
    ],
)
def test_eventactors_serve_refuses_in_one_line(
    tmp_path: Path, bank_db: tuple[Path, object], arguments: list[str], message: str
) -> None:
    arguments = [argument.format(db=bank_db[0]) for argument in arguments]
    done = subprocess.run(
        [EVENTACTORS, "serve", *arguments, "--port", "0"],
        cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert done.returncode == 1
    assert message in done.stderr
    assert "Traceback" not in done.stderr


@pytest.fixture
def postgres_console(loop: LoopThread) -> Iterator[str]:
    schema = new_schema_name()
    try:
        loop.run(seed_bank(ea.PostgresStore(DSN, schema=schema)))
        served = ServedConsole(loop, loop.run(bank_console(ea.PostgresStore(DSN, schema=schema))))
        try:
            yield served.url
        finally:
            served.stop()
    finally:
        loop.run(drop_schema(schema))


def test_smoke_on_postgresql(page: Page, postgres_console: str) -> None:
    page.goto(postgres_console)
    page.get_by_label("Search").fill("acc-4")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="account|acc-4").click()
    expect(page.get_by_text("7 events · entity type account")).to_be_visible()
    page.get_by_label("Revision").fill("3")
    page.get_by_role("button", name="Show state").click()
    expect(page.locator("#state")).to_contain_text('"balance": 9000')  # 4000 + 5000
    page.locator("section.timeline").get_by_role("row").nth(2).get_by_role(
        "link", name=re.compile("^#")
    ).click()
    expect(page.locator("#payload")).to_have_text('{\n  "amount": 4000\n}')
    expect(page.locator("table.fields").get_by_role("row", name="channel")).to_contain_text(
        "import"
    )
    page.get_by_role("link", name="Projection lag").click()
    offsets = page.get_by_role("table").first.get_by_role("row").filter(has_text="balances")
    expect(offsets).to_have_text(re.compile(r"balances\s*45\s*45\s*0"))
