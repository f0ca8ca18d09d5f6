"""Exactly-once read models across crashes: a real process is SIGKILLed inside a projection
transaction (rows written, offset not yet committed) and from outside at random moments,
restarted each time; afterwards the balances table must equal the events exactly: nothing
missed, nothing counted twice."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from eventactors_examples.bank.balances import read_balances
from eventactors_examples.bank.domain import Closed, Deposited, Opened, Withdrawn
from postgres_support import DSN

from eventactors import open_store

pytestmark = pytest.mark.timeout(180)
CHILD = Path(__file__).with_name("projection_crash_child.py")


def kill_child_at_random(location: str, schema: str, rng: random.Random) -> int:
    """Starts a child and SIGKILLs it from outside after a random delay: any moment at all."""
    child = subprocess.Popen(
        [sys.executable, str(CHILD), location, schema, "400", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        child.wait(timeout=rng.uniform(0.6, 1.6))
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGKILL)
    return child.wait(timeout=30)


def run_child(
    location: str, schema: str, commands: int, crash_at: int, *, at_offset: bool = False
) -> int:
    environment = {**os.environ, "CRASH_AT_OFFSET": "1"} if at_offset else None
    result = subprocess.run(
        [sys.executable, str(CHILD), location, schema, str(commands), str(crash_at)],
        capture_output=True, text=True, timeout=120, env=environment,
    )  # fmt: skip
    if crash_at == 0:
        assert result.returncode == 0 and "done" in result.stdout, result.stderr
    return result.returncode


async def expected_balances(location: str, schema: str) -> dict[str, tuple[int, int]]:
    """(balance, events) per account, folded straight from the event log."""
    store = open_store(location, schema=schema)
    for cls in (Opened, Deposited, Withdrawn, Closed):
        store.serializer.register(cls)
    expected: dict[str, tuple[int, int]] = {}
    position = 0
    while page := await store.read_all(position, 1000):
        for envelope in page:
            balance, events = expected.get(envelope.entity_id, (0, 0))
            event = envelope.event
            change = getattr(event, "amount", 0) * (-1 if isinstance(event, Withdrawn) else 1)
            expected[envelope.entity_id] = (balance + change, events + 1)
        position = page[-1].global_position
    await store.close()
    return expected


async def check_crash_campaign(location: str, schema: str, *, at_offset: bool = False) -> None:
    rng = random.Random()
    kills = 0
    for _ in range(3):
        crash_at = rng.randint(1, 6)
        code = run_child(location, schema, commands=120, crash_at=crash_at, at_offset=at_offset)
        kills += code == -9  # the process may finish before reaching the crash page
    for _ in range(5):
        kills += kill_child_at_random(location, schema, rng) == -9
    run_child(location, schema, commands=40, crash_at=0)  # a clean run catches up
    assert kills >= 1, "no run was killed inside a projection transaction"
    read_model = await read_balances(open_store(location, schema=schema))
    expected = await expected_balances(location, schema)
    got = {account: (balance, applied) for account, (_, balance, _, applied) in read_model.items()}
    assert got == expected, "the read model missed or double-counted events across the crashes"


async def test_sqlite_read_model_is_exact_across_kills_inside_its_transaction(tmp_path):
    await check_crash_campaign(str(tmp_path / "crash.db"), "unused")


async def test_sqlite_read_model_is_exact_when_killed_as_the_offset_is_written(tmp_path):
    """The narrowest window: the rows are written, the process dies writing the offset."""
    await check_crash_campaign(str(tmp_path / "crash.db"), "unused", at_offset=True)


async def test_postgres_read_model_is_exact_across_kills_inside_its_transaction(pg_schema):
    await check_crash_campaign(DSN, pg_schema)
