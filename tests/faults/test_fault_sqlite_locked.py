"""Fault: another process holds the SQLite file's write lock for longer than the busy timeout.

A real child process opens the file with the plain sqlite3 module, runs `BEGIN EXCLUSIVE`,
writes a row it never commits, and holds on. In WAL mode that blocks every writer but no
reader. Commands that must write fail after the store's `busy_timeout` with
`StoreUnavailable` naming the lock and the timeout; reads, rejections and state queries carry
on; once the child lets go (or dies), the same engine writes again, from the right revisions.
"""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from durability_checks import LineReader
from eventactors_examples.bank.domain import AccountBehavior, Deposit, Open, Withdraw
from fault_support import Ledger, assert_recovered, integrity
from waits import wait_until

import eventactors as ea

pytestmark = pytest.mark.timeout(60)

BUSY_TIMEOUT = 0.5
LOCKED = r"database is locked.*busy_timeout=0\.5s"

LOCKER = textwrap.dedent(
    """
    import sqlite3, sys
    connection = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
    connection.execute("BEGIN EXCLUSIVE")
    # A write of its own that it never commits: nobody may ever see it.
    connection.execute(
        "INSERT INTO ea_offsets (projection, position, updated_at) VALUES ('intruder', 7, 'x')"
    )
    print("locked", flush=True)
    sys.stdin.readline()
    connection.execute("ROLLBACK")
    print("released", flush=True)
    """
)


class Locker:
    """The child process that holds the lock, and the two ways its lock ends."""

    def __init__(self, path: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", LOCKER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.reader = LineReader(self.process.stdout)
        assert self.reader.readline(time.monotonic() + 30) == "locked", "the locker never locked"

    def release(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")
        self.process.stdin.flush()
        assert self.reader.readline(time.monotonic() + 30) == "released"
        assert self.process.wait(timeout=30) == 0

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(timeout=30)

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()
        self.reader.close()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture
def locker_on(tmp_path: Path) -> Iterator[type[Locker]]:
    lockers: list[Locker] = []

    class Tracked(Locker):
        def __init__(self, path: Path) -> None:
            lockers.append(self)
            super().__init__(path)

    yield Tracked
    for locker in lockers:
        locker.close()


def intruder_rows(path: Path) -> list[tuple[str]]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(
            "SELECT projection FROM ea_offsets WHERE projection = 'intruder'"
        ).fetchall()
    finally:
        connection.close()


@pytest.mark.parametrize("lock_ends", ["released", "killed"])
async def test_commands_fail_clearly_while_another_process_holds_the_lock_then_recover(
    tmp_path: Path, locker_on: type[Locker], lock_ends: str
) -> None:
    path = tmp_path / "locked.db"
    engine = ea.Engine(store=ea.SQLiteStore(path, busy_timeout=BUSY_TIMEOUT))
    engine.register("account", AccountBehavior)
    ledger = Ledger()
    async with engine:
        for name in ("a", "b", "c"):
            ledger.record(await engine.send("account", name, Open(name), timeout=30))
        ledger.record(await engine.send("account", "a", Deposit(10), timeout=30))
        b_before = await engine.get_state("account", "b", timeout=30)

        locker = locker_on(path)

        # A command that must write fails after the busy timeout, naming the lock.
        started = time.monotonic()
        with pytest.raises(ea.StoreUnavailable, match=LOCKED) as raised:
            await engine.send("account", "a", Deposit(5), timeout=30)
        assert "'account|a'" in str(raised.value)
        assert not isinstance(raised.value, sqlite3.Error)
        assert time.monotonic() - started < 20  # the busy timeout, not a hang
        # Several entities at once share one failed transaction: each hears the same reason.
        results = await asyncio.gather(
            *(engine.send("account", name, Deposit(1), timeout=30) for name in "abc"),
            return_exceptions=True,
        )
        assert [type(result) for result in results] == [ea.StoreUnavailable] * 3
        assert all("database is locked" in str(result) for result in results)
        # A caller who gives up sooner gets its own timeout; the append then fails behind it.
        with pytest.raises(ea.CommandTimeout, match=r"'account\|c' within 0\.1s"):
            await engine.send("account", "c", Deposit(99), timeout=0.1)
        await wait_until(lambda: engine.statistics().busy_entities == 0, timeout=20)

        # The engine stays up: reads, rejections and new entities need no write lock.
        assert engine.is_running
        assert await engine.get_state("account", "b", timeout=5) == b_before
        with pytest.raises(ea.Rejected, match="insufficient funds"):
            await engine.send("account", "b", Withdraw(1_000), timeout=5)
        assert await engine.get_state("account", "new", timeout=5) == (
            AccountBehavior().initial_state(),
            0,
        )
        assert len(await engine.store.read_all()) == 4
        assert await engine.store.highest_sequence_number("account|a") == 2

        if lock_ends == "released":
            locker.release()
        else:
            locker.kill()  # dies holding the lock and an uncommitted write

        # Every entity writes again, from the revision it really is at.
        for name, revision in (("a", 3), ("b", 2), ("c", 2)):
            reply = ledger.record(await engine.send("account", name, Deposit(7), timeout=30))
            assert reply.revision == revision
        assert (await engine.get_state("account", "a"))[0].balance == 17
        await assert_recovered(engine, ledger, AccountBehavior, "account", ea.SQLiteStore(path))
    assert intruder_rows(path) == []
    assert integrity(path) == [("ok",)]


async def test_an_engine_started_while_the_file_is_locked_fails_clearly_then_starts(
    tmp_path: Path, locker_on: type[Locker]
) -> None:
    path = tmp_path / "locked-at-start.db"
    engine = ea.Engine(store=ea.SQLiteStore(path, busy_timeout=BUSY_TIMEOUT))
    engine.register("account", AccountBehavior)
    async with engine:
        reply = await engine.send("account", "a", Open("ann"), timeout=30)
    locker = locker_on(path)
    with pytest.raises(ea.StoreUnavailable, match=LOCKED):
        await engine.start()
    assert not engine.is_running
    locker.release()
    async with engine:  # the same engine and store object start once the lock is gone
        assert await engine.get_state("account", "a", timeout=30) == (reply.state, 1)
        assert (await engine.send("account", "a", Deposit(3), timeout=30)).revision == 2
    assert integrity(path) == [("ok",)]
