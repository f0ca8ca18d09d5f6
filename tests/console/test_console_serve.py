"""The real `eventactors serve` command in a subprocess, and the console on PostgreSQL."""

from __future__ import annotations

import http.client
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import bank_console
from console_seed import Seeded, seed_bank
from console_support import LoopThread, ServedConsole
from playwright.sync_api import Page, expect
from postgres_support import DSN, drop_schema, new_schema_name

import eventactors as ea
from eventactors.console import create_app

EVENTACTORS = str(Path(sys.executable).parent / "eventactors")
STARTED = re.compile(r"eventactors console at (http://127\.0\.0\.1:(\d+))")


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


def test_eventactors_serve_with_allow_commands_writes_the_command(
    page: Page, tmp_path: Path, loop: LoopThread
) -> None:
    path = tmp_path / "writable.db"
    loop.run(seed_bank(ea.SQLiteStore(path)))
    before = loop.run(highest_sequence(path, "account|acc-3"))
    app = "eventactors_examples.bank.app:build_engine"
    serve = ServeProcess("--store", str(path), "--app", app, "--allow-commands", "--port", "0")
    try:
        url, _ = serve.wait_for(STARTED).groups()
        page.goto(url + "/stream?id=account|acc-3")
        page.get_by_label("Command").select_option("Deposit")
        page.get_by_label("Body (JSON)").fill('{"amount": 1}')
        page.get_by_role("button", name="Send").click()
        expect(page.get_by_role("status")).to_contain_text("Deposit accepted")
    finally:
        assert serve.stop() == 0, "".join(serve.output)
    assert loop.run(highest_sequence(path, "account|acc-3")) == before + 1


async def highest_sequence(path: Path, persistence_id: str) -> int:
    store = ea.SQLiteStore(path, read_only=True)
    try:
        return await store.highest_sequence_number(persistence_id)
    finally:
        await store.close()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--store", "missing.db"], "eventactors serve: no such store: missing.db"),
        (["--store", "{db}", "--allow-commands"], "--allow-commands needs --app"),
        (["--store", "{db}", "--app", "no_such_module:engine"], "cannot load app"),
        (
            ["--store", "{db}", "--host", "0.0.0.0", "--app", "bank:app", "--allow-commands"],
            "--allow-commands is refused on every interface (--host '0.0.0.0')",
        ),
        (["--store", "{db}", "--port", "{busy_port}"], "Address already in use"),
    ],
)
def test_eventactors_serve_refuses_in_one_line(
    tmp_path: Path, bank_db: tuple[Path, object], arguments: list[str], message: str
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:  # a port another server holds
        busy_port = str(busy.getsockname()[1])
        arguments = [arg.format(db=bank_db[0], busy_port=busy_port) for arg in arguments]
        if "--port" not in arguments:
            arguments += ["--port", "0"]
        done = subprocess.run(
            [EVENTACTORS, "serve", *arguments],
            cwd=tmp_path, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert done.returncode == 1
    [line] = done.stderr.splitlines()  # one line, and no banner before it
    assert line.startswith("eventactors serve: ") and message in line


def test_eventactors_serve_on_ipv6_loopback(page: Page, bank_db: tuple[Path, object]) -> None:
    serve = ServeProcess("--store", str(bank_db[0]), "--host", "::1", "--port", "0")
    try:
        started = re.compile(r"eventactors console at (http://\[::1\]:(\d+))")
        url, port = serve.wait_for(started).groups()
        assert listening_addresses(int(port)) == {"00000000000000000000000001000000"}  # ::1
        page.goto(url)
        expect(page.get_by_role("heading", name="Streams")).to_be_visible()
        page.get_by_role("link", name="account|acc-3").click()
        expect(page.get_by_role("heading", name="account|acc-3")).to_be_visible()
    finally:
        assert serve.stop() == 0, "".join(serve.output)
    assert "warning" not in "".join(serve.output)


def test_eventactors_serve_on_every_interface_warns_and_keeps_the_host_check(
    bank_db: tuple[Path, object],
) -> None:
    serve = ServeProcess("--store", str(bank_db[0]), "--host", "0.0.0.0", "--port", "0")
    try:
        warning = serve.wait_for(re.compile(r"^eventactors serve: warning: 0\.0\.0\.0 is not a"))
        assert "anyone who can reach it can read every event" in warning.string
        port = int(serve.wait_for(re.compile(r"console at http://0\.0\.0\.0:(\d+)")).group(1))
        hosts = [("evil.example", 400), ("localhost", 200), (socket.gethostname(), 200)]
        for host, status in hosts:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                connection.request("GET", "/", headers={"Host": f"{host}:{port}"})
                assert connection.getresponse().status == status, host
            finally:
                connection.close()
    finally:
        assert serve.stop() == 0, "".join(serve.output)


class CountedCloses(ea.SQLiteStore):
    """An SQLite store that counts its closes."""

    closes = 0

    async def close(self) -> None:
        self.closes += 1
        await super().close()


def test_shutdown_stops_the_engine_and_closes_the_store_even_after_the_sampler_died(
    page: Page, loop: LoopThread, bank_db: tuple[Path, object]
) -> None:
    store = CountedCloses(bank_db[0])
    app = loop.run(bank_console(store))
    console = app.state.console

    async def broken_sampler() -> None:
        raise RuntimeError("the sampler broke")

    console.sampler.run = broken_sampler
    served = ServedConsole(loop, app)
    try:
        page.goto(served.url + "/stream?id=account|acc-1")
        expect(page.locator("#state")).to_contain_text('"balance": 2600')  # the engine runs
    finally:
        served.stop()
    assert not console.engine.is_running
    assert store.closes == 1  # by the engine's stop, and only there


def test_an_unreachable_store_gets_pages_that_say_so(page: Page, loop: LoopThread) -> None:
    store = ea.PostgresStore("postgresql://postgres@127.0.0.1:1/test", connect_timeout=2.0)
    served = ServedConsole(loop, create_app(store, sample_interval=0.2))
    try:
        response = page.goto(served.url + "/lag")
        assert response is not None and response.status == 503
        expect(page.get_by_role("heading", name="Projection lag")).to_be_visible()
        expect(
            page.get_by_text(re.compile(r"^Could not read the offsets: .*unavailable"))
        ).to_be_visible()
        response = page.goto(served.url + "/")
        assert response is not None and response.status == 503
        expect(page.get_by_role("heading", name="Store unavailable")).to_be_visible()
    finally:
        served.stop()


@pytest.fixture
def postgres_console(loop: LoopThread) -> Iterator[tuple[str, Seeded]]:
    schema = new_schema_name()
    try:
        seeded = loop.run(seed_bank(ea.PostgresStore(DSN, schema=schema)))
        served = ServedConsole(loop, loop.run(bank_console(ea.PostgresStore(DSN, schema=schema))))
        try:
            yield served.url, seeded
        finally:
            served.stop()
    finally:
        loop.run(drop_schema(schema))


def test_smoke_on_postgresql(page: Page, postgres_console: tuple[str, Seeded]) -> None:
    url, seeded = postgres_console
    page.goto(url)
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
    position, head = seeded.balances_position, seeded.head
    expect(offsets).to_have_text(re.compile(rf"balances\s*{position}\s*{head}\s*{head - position}"))
