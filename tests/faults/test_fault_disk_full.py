"""Fault: the disk fills up under the SQLite store, then space comes back.

Two ways to fill it. A file size limit (RLIMIT_FSIZE) works for any user; it limits a whole
process, so the engine runs in a child driven over a pipe (see disk_full_child.py). A small
tmpfs, mounted where the tests may (root), fills for real: ENOSPC, and big events whose
transaction spills out of SQLite's page cache before it commits. Either way the caller gets
`StoreUnavailable` saying the disk is full, the engine keeps answering, the file stays intact,
and once there is room the same engine writes again from the right revisions.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from durability_checks import LineReader
from eventactors_examples.bank.domain import AccountBehavior
from fault_support import Ledger, assert_recovered, integrity

import eventactors as ea

pytestmark = pytest.mark.timeout(90)

CHILD = Path(__file__).with_name("disk_full_child.py")
FULL = r"(database or disk is full|disk I/O error).*(no room|full disk)"


def assert_disk_full(failure: dict[str, Any] | BaseException, stream: str) -> None:
    """A clear error: the store's type, the stream, and that the disk is the problem; never
    SQLite's bookkeeping (a savepoint the rolled-back transaction no longer has)."""
    if isinstance(failure, BaseException):
        failure = {"error": type(failure).__name__, "message": str(failure)}
    assert failure["error"] == "StoreUnavailable", failure
    message = failure["message"]
    assert f"'{stream}'" in message and "savepoint" not in message, message
    assert re.search(FULL, message), message


class Child:
    """The engine's process: one JSON request, one JSON answer, each within a deadline."""

    def __init__(self, path: Path, log: Path) -> None:
        self.log = log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, str(CHILD), str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
        )
        self.reader = LineReader(self.process.stdout)
        self.path = log
        assert self.answer() == {"ready": True}

    def answer(self) -> Any:
        line = self.reader.readline(time.monotonic() + 60)
        assert line is not None, f"the child did not answer: {self.path.read_text()}"
        return json.loads(line)

    def ask(self, op: str, **request: Any) -> Any:
        assert self.process.stdin is not None
        self.process.stdin.write((json.dumps({"op": op, **request}) + "\n").encode())
        self.process.stdin.flush()
        return self.answer()

    def send(self, ledger: Ledger, account: str, command: str, amount: int = 0) -> Any:
        result = self.ask("send", account=account, command=command, amount=amount)
        record(ledger, result)
        return result

    def stop(self) -> None:
        assert self.ask("stop") == {"stopped": True}
        assert self.process.wait(timeout=60) == 0, self.path.read_text()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
        self.reader.close()
        for stream in (self.process.stdin, self.process.stdout, self.log):
            if stream is not None:
                stream.close()


def record(ledger: Ledger, result: dict[str, Any]) -> None:
    for persistence_id, sequence_number, event_id in result.get("events", []):
        ledger.add(persistence_id, sequence_number, event_id)


def stored_rows(path: Path) -> dict[str, list[tuple[int, str]]]:
    """The log as another process sees it, read with the plain sqlite3 module."""
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute(
            "SELECT persistence_id, sequence_number, event_id FROM ea_events "
            "ORDER BY global_position"
        ).fetchall()
    finally:
        connection.close()
    streams: dict[str, list[tuple[int, str]]] = {}
    for persistence_id, sequence_number, event_id in rows:
        streams.setdefault(persistence_id, []).append((sequence_number, event_id))
    return streams


@pytest.fixture
def child_on(tmp_path: Path) -> Iterator[Child]:
    child = Child(tmp_path / "full.db", tmp_path / "child.log")
    try:
        yield child
    finally:
        child.close()


async def test_a_file_size_limit_fails_writes_clearly_then_they_recover(
    tmp_path: Path, child_on: Child
) -> None:
    child, path, ledger = child_on, tmp_path / "full.db", Ledger()
    for account in ("a", "b"):
        assert child.send(ledger, account, "open")["ok"]
    child.ask("limit", headroom=150_000)

    filled = child.ask("fill", account="a")
    for ack in filled["acks"]:
        record(ledger, ack)
    assert filled["acks"], "the limit left no room for a single deposit"
    assert filled["failure"] is not None, "1000 deposits fitted under the limit"
    assert_disk_full(filled["failure"], "account|a")

    # The engine keeps answering: states, rejections; writes fail the same clear way.
    assert child.ask("state", account="b") == {"balance": 0, "revision": 1}
    refused = child.send(ledger, "b", "withdraw", 1_000)
    assert (refused["error"], refused["message"]) == ("Rejected", "insufficient funds")
    assert_disk_full(child.send(ledger, "b", "deposit", 5), "account|b")
    for result, account in zip(
        child.ask("burst", accounts=["a", "b"])["results"], "ab", strict=True
    ):
        assert_disk_full(result, f"account|{account}")
    # Another process reads the file meanwhile: intact, and exactly the acknowledged events.
    assert integrity(path) == [("ok",)]
    assert stored_rows(path) == ledger.streams

    child.ask("unlimit")
    revision_a = ledger.revision("account|a")
    assert child.send(ledger, "a", "deposit", 100)["revision"] == revision_a + 1
    assert child.send(ledger, "b", "deposit", 100)["revision"] == 2
    assert child.send(ledger, "c", "open")["revision"] == 1
    assert child.ask("state", account="a") == {
        "balance": revision_a - 1 + 100,
        "revision": revision_a + 1,
    }
    child.stop()

    assert integrity(path) == [("ok",)]
    engine = ea.Engine(store=ea.SQLiteStore(path))
    engine.register("account", AccountBehavior)
    async with engine:
        await assert_recovered(engine, ledger, AccountBehavior, "account", ea.SQLiteStore(path))


# -- a real full file system ------------------------------------------------------------------


class Note(msgspec.Struct, frozen=True):
    text: str


class Notes(msgspec.Struct, frozen=True):
    count: int = 0
    size: int = 0


class NoteBehavior(ea.EventSourcedBehavior[Notes]):
    events = (Note,)

    def initial_state(self) -> Notes:
        return Notes()

    def handle_command(self, state: Notes, command: str) -> Note:
        if not command:
            raise ea.Rejected("an empty note")
        return Note(command)

    def handle_event(self, state: Notes, event: Note) -> Notes:
        return Notes(state.count + 1, state.size + len(event.text))


@pytest.fixture
def small_file_system(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs of the test's own, or a skip where mounting is not allowed."""
    mount_point = tmp_path / "fs"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        if subprocess.run(["umount", str(mount_point)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill_up(mount_point: Path, leave: int) -> Path:
    """A ballast file taking all the room but `leave` bytes."""
    status = os.statvfs(mount_point)
    ballast = mount_point / "ballast"
    ballast.write_bytes(b"\0" * (status.f_bavail * status.f_frsize - leave))
    return ballast


async def test_a_full_file_system_fails_writes_clearly_then_they_recover(
    small_file_system: Path,
) -> None:
    path = small_file_system / "notes.db"
    engine = ea.Engine(store=ea.SQLiteStore(path))
    engine.register("note", NoteBehavior)
    ledger = Ledger()
    many = [f"n{i}" for i in range(24)]
    async with engine:
        for name in ("a", "b"):
            ledger.record(await engine.send("note", name, "first", timeout=30))
        ballast = fill_up(small_file_system, leave=64 * 1024)

        failure = None
        for _ in range(200):
            try:
                ledger.record(await engine.send("note", "a", "x" * 2000, timeout=30))
            except ea.StoreUnavailable as exc:
                failure = exc
                break
        assert failure is not None, "200 notes fitted in 64 KiB"
        assert_disk_full(failure, "note|a")
        # Big events at once: the batch outgrows SQLite's page cache and spills to the WAL
        # before its commit, so the disk fills in the middle of the transaction.
        results = await asyncio.gather(
            *(engine.send("note", name, "y" * 150_000, timeout=30) for name in many),
            return_exceptions=True,
        )
        for name, result in zip(many, results, strict=True):
            assert_disk_full(result, f"note|{name}")  # type: ignore[arg-type]

        assert engine.is_running
        assert (await engine.get_state("note", "b", timeout=5))[1] == 1
        with pytest.raises(ea.Rejected, match="an empty note"):
            await engine.send("note", "b", "", timeout=5)
        assert integrity(path) == [("ok",)]

        ballast.unlink()
        revision_a = ledger.revision("note|a")
        assert (
            ledger.record(await engine.send("note", "a", "z", timeout=30)).revision
            == revision_a + 1
        )
        replies = await asyncio.gather(
            *(engine.send("note", name, "y" * 50_000, timeout=30) for name in many)
        )
        assert [ledger.record(reply).revision for reply in replies] == [1] * len(many)
        await assert_recovered(engine, ledger, NoteBehavior, "note", ea.SQLiteStore(path))
    assert integrity(path) == [("ok",)]
