"""What the SIGKILL durability tests share: the acks a killed child printed, a deadline-bound
reader of its stdout, and the check that every acknowledged event survived."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eventactors_examples.bank.domain import Account, Deposited, Opened, register

import eventactors as ea


@dataclass(frozen=True)
class Ack:
    account: str
    revision: int
    event_id: str
    amount: int


class LineReader:
    """Reads lines from a child's stdout with deadlines, never blocking past them."""

    def __init__(self, stream: Any) -> None:
        self._fd = stream.fileno()
        self._buffer = b""
        self._eof = False
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._fd, selectors.EVENT_READ)

    def close(self) -> None:
        self._selector.close()

    def _fill(self, timeout: float) -> None:
        if self._eof or not self._selector.select(max(timeout, 0.0)):
            return
        chunk = os.read(self._fd, 65536)
        if chunk:
            self._buffer += chunk
        else:
            self._eof = True

    def _pop(self) -> str | None:
        line, newline, rest = self._buffer.partition(b"\n")
        if not newline:
            return None
        self._buffer = rest
        return line.decode()

    def readline(self, deadline: float) -> str | None:
        """The next complete line, or None at end of file or when the deadline passes."""
        while (line := self._pop()) is None:
            remaining = deadline - time.monotonic()
            if self._eof or remaining <= 0:
                return None
            self._fill(remaining)
        return line

    def rest(self, deadline: float) -> list[str]:
        """Every remaining complete line up to end of file (the writer must be gone)."""
        lines = []
        while True:
            line = self.readline(deadline)
            if line is None:
                assert self._eof, "the killed child's stdout did not reach end of file in time"
                return lines
            lines.append(line)


def parse_ack(line: str) -> Ack:
    word, account, revision, event_id, amount = line.split()
    assert word == "ack", line
    return Ack(account, int(revision), event_id, int(amount))


def kill_child_after(command: list[str], kill_after: int, log: Path, seconds: float) -> list[Ack]:
    """Runs a depositing child, SIGKILLs it after `kill_after` acks (which must come within
    `seconds`), and returns every ack it printed, including those still in the pipe when it
    died: the child flushed them, so they were acknowledged."""
    acks: list[Ack] = []
    with (
        log.open("ab") as stderr,
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL
        ) as child,
    ):
        reader = LineReader(child.stdout)
        try:
            deadline = time.monotonic() + seconds
            assert reader.readline(deadline) == "ready", f"child never got ready: {log.read_text()}"
            while len(acks) < kill_after:
                line = reader.readline(deadline)
                assert line is not None, (
                    f"child stopped acknowledging after {len(acks)} acks "
                    f"(exit code {child.poll()}): {log.read_text()}"
                )
                acks.append(parse_ack(line))
            assert child.poll() is None, "the child exited on its own"
            os.kill(child.pid, signal.SIGKILL)
            assert child.wait(timeout=10) == -signal.SIGKILL
            acks.extend(parse_ack(line) for line in reader.rest(time.monotonic() + 10))
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(timeout=10)
            reader.close()
    return acks


async def check_recovered(
    open_store: Callable[[], ea.Store], accounts: list[str], acks: list[Ack]
) -> int:
    """Every ack is stored at its revision, each stream is gap-free without duplicates, and a
    fresh engine recovers the balances the events add up to; returns the events stored."""
    store = open_store()
    for cls in (Opened, Deposited, Account):
        store.serializer.register(cls)
    streams: dict[str, list[ea.EventEnvelope]] = {}
    try:
        for account in accounts:
            pid = f"account|{account}"
            highest = await store.highest_sequence_number(pid)
            stream = await store.read_stream(pid)
            assert [e.sequence_number for e in stream] == list(range(1, highest + 1)), pid
            assert len({e.event_id for e in stream}) == len(stream), f"{pid}: duplicate events"
            positions = [e.global_position for e in stream]
            assert positions == sorted(set(positions)), pid
            assert stream[0].event == Opened("owner-" + account)
            assert all(isinstance(e.event, Deposited) for e in stream[1:]), pid
            streams[account] = stream
        for ack in acks:
            stream = streams[ack.account]
            assert len(stream) >= ack.revision, f"acknowledged {ack} was lost"
            stored = stream[ack.revision - 1]
            assert stored.event_id == ack.event_id, f"{ack} is not the stored event {stored}"
            assert stored.event == Deposited(ack.amount), ack
    finally:
        await store.close()

    # A fresh engine recovers (from snapshots and events) the balance the events add up to.
    engine = ea.Engine(store=open_store())
    register(engine)
    async with engine:
        for account, stream in streams.items():
            state, revision = await engine.get_state("account", account, timeout=10)
            assert revision == len(stream), account
            assert state == Account(
                owner="owner-" + account,
                balance=sum(e.event.amount for e in stream[1:]),
                is_open=True,
            ), account
    return sum(len(stream) for stream in streams.values())
