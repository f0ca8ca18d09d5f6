"""`eventactors events --follow` as a real process, stopped with Ctrl-C: the history, then
the live tail, from where `--from` says, with no event lost or repeated at the handover."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
from eventactors_examples.bank.domain import Deposited
from postgres_support import DSN
from test_cli_inspect import EVENTACTORS
from test_inspection import DAY, bank, write

import eventactors as ea


@pytest_asyncio.fixture
async def db(tmp_path) -> AsyncIterator[str]:
    """An SQLite store with the bank of `test_inspection.bank`: account|ann (3 events),
    account|bob (2), loan|L-1 (1)."""
    path = tmp_path / "bank.db"
    store = ea.SQLiteStore(path)
    await bank(store)
    await store.close()
    yield str(path)


async def follow(*args: str, cwd: object) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *EVENTACTORS.split(), "events", *args, "--follow", cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def read_line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 20)  # the deadline
    assert line, "the process closed its output"
    return line.decode()


async def read_note(process: asyncio.subprocess.Process) -> str:
    """The line on stderr that says the history was empty: the live tail starts after it."""
    assert process.stderr is not None
    line = await asyncio.wait_for(process.stderr.readline(), 20)
    return line.decode().rstrip("\n")


async def interrupt(process: asyncio.subprocess.Process) -> tuple[int, str]:
    process.send_signal(signal.SIGINT)
    assert process.stderr is not None
    await asyncio.wait_for(process.wait(), 20)
    err = (await process.stderr.read()).decode()
    assert process.returncode is not None
    return process.returncode, err


async def test_events_follow_tails_one_stream_until_ctrl_c(db, tmp_path):
    process = await asyncio.create_subprocess_exec(
        *EVENTACTORS.split(), "events", "account|bob", "--follow", "--store", db, cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        history = [await read_line(process), await read_line(process)]
        assert '{"owner": "bob"}' in history[0] and '{"amount": 7}' in history[1]
        store = ea.SQLiteStore(db)
        await write(store, "account", "ann", Deposited(1), at=DAY)  # another stream: not shown
        await write(store, "account", "bob", Deposited(42), at=DAY)
        await store.close()
        live = await read_line(process)
        assert "account|bob" in live and "Deposited" in live and '{"amount": 42}' in live
    finally:
        code, err = await interrupt(process)
    assert (code, err) == (0, "")


async def test_events_all_follow_as_json_lines_on_postgres(pg_schema, tmp_path):
    store = ea.PostgresStore(DSN, schema=pg_schema)
    await bank(store)
    process = await asyncio.create_subprocess_exec(
        *EVENTACTORS.split(), "events", "--all", "--follow", "--json", "--store", DSN,
        "--schema", pg_schema, "--from", "6", cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert json.loads(await read_line(process))["persistence_id"] == "loan|L-1"
        await write(store, "loan", "L-2", Deposited(3), at=DAY)
        live = json.loads(await read_line(process))
        assert (live["persistence_id"], live["global_position"], live["payload"]) == (
            "loan|L-2", 7, {"amount": 3},
        )  # fmt: skip
    finally:
        await store.close()
        code, err = await interrupt(process)
    assert (code, err) == (0, "")


async def test_follow_of_the_log_starts_at_from_even_past_the_head(db, tmp_path):
    process = await follow("--all", "--from", "9", "--json", "--store", db, cwd=tmp_path)
    try:
        assert await read_note(process) == "eventactors events: no events in that range of the log"
        store = ea.SQLiteStore(db)  # written once the live tail runs: positions 7, 8, 9
        await write(store, "loan", "L-2", Deposited(7), Deposited(8), Deposited(9))
        await store.close()
        first = json.loads(await read_line(process))
        assert (first["global_position"], first["payload"]) == (9, {"amount": 9})
    finally:
        code, err = await interrupt(process)
    assert (code, err) == (0, "")


async def test_follow_of_a_stream_starts_at_from_even_past_its_end(db, tmp_path):
    process = await follow("account|bob", "--from", "5", "--json", "--store", db, cwd=tmp_path)
    try:
        assert "no events of 'account|bob' in that range" in await read_note(process)
        store = ea.SQLiteStore(db)  # sequences 3, 4 and 5
        await write(store, "account", "bob", Deposited(3), Deposited(4), Deposited(5))
        await store.close()
        first = json.loads(await read_line(process))
        assert (first["sequence_number"], first["payload"]) == (5, {"amount": 5})
    finally:
        code, err = await interrupt(process)
    assert (code, err) == (0, "")


class Writer:
    """Appends to three streams without pause until stopped, as an application would."""

    def __init__(self, store: ea.Store) -> None:
        self.store = store
        self.written = 0
        self.stopped = asyncio.Event()

    async def run(self) -> None:
        while not self.stopped.is_set():
            entity = f"w{self.written % 3}"
            await write(self.store, "acct", entity, Deposited(self.written), at=DAY)
            self.written += 1


@pytest.mark.parametrize(
    ("backend", "mode"), [("sqlite", "all"), ("sqlite", "stream"), ("postgres", "all")]
)
async def test_the_handover_from_history_to_live_loses_and_repeats_nothing(
    tmp_path, pg_schema, backend, mode
):
    """Events keep coming while the command reads the head, lists the history and starts its
    live tail: every one of them is printed exactly once, in order."""
    if backend == "sqlite":
        where = ["--store", str(tmp_path / "busy.db")]
        store: ea.Store = ea.SQLiteStore(tmp_path / "busy.db")
    else:
        where = ["--store", DSN, "--schema", pg_schema]
        store = ea.PostgresStore(DSN, schema=pg_schema)
    writer = Writer(store)
    await write(store, "acct", "w0", Deposited(-1), at=DAY)  # the store exists
    writing = asyncio.create_task(writer.run())
    target = ["--all"] if mode == "all" else ["acct|w1"]
    key: Callable[[dict[str, int]], int] = (
        (lambda line: line["global_position"])
        if mode == "all"
        else (lambda line: line["sequence_number"])
    )
    process = await follow(*target, "--json", *where, cwd=tmp_path)
    seen: list[int] = []
    try:
        seen.append(key(json.loads(await read_line(process))))
        started = writer.written
        while writer.written < started + 300:  # well into the live tail, still writing
            seen.append(key(json.loads(await read_line(process))))
        writer.stopped.set()
        await writing
        if mode == "all":
            expected = list(range(1, await store.head_position() + 1))
        else:
            expected = list(range(1, await store.highest_sequence_number("acct|w1") + 1))
        while seen[-1] < expected[-1]:
            seen.append(key(json.loads(await read_line(process))))
    finally:
        writer.stopped.set()
        await writing
        await store.close()
        code, err = await interrupt(process)
    assert (code, err) == (0, "")
    assert seen == expected
