"""PostgreSQL restarted under load: in-flight commands fail with StoreUnavailable, later ones
succeed without restarting the engine, and no acknowledged event is lost or written twice.

This test restarts the real local server (`pg_ctlcluster ... restart`), and makes sure it is
running again when the test ends, whatever happens.
"""

from __future__ import annotations

import asyncio
import collections
import subprocess
import time
from pathlib import Path

import pytest
from eventactors_examples.bank.domain import AccountBehavior, Deposit, Open
from postgres_support import DSN
from waits import wait_until

import eventactors as ea

pytestmark = pytest.mark.timeout(120)

ACCOUNTS = 6
CLIENTS = 12


def cluster() -> list[str]:
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    return ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main"]


def server_is_up() -> bool:
    return subprocess.run(["pg_isready", "-h", "127.0.0.1", "-q"], check=False).returncode == 0


def ensure_server_running() -> None:
    if not server_is_up():
        subprocess.run([*cluster(), "start"], check=False, timeout=60)
    deadline = time.monotonic() + 60
    while not server_is_up():
        assert time.monotonic() < deadline, "PostgreSQL did not come back"
        time.sleep(0.2)


async def test_a_restart_fails_commands_in_flight_and_loses_nothing(pg_schema):
    store = ea.PostgresStore(DSN, schema=pg_schema, connect_timeout=3, command_timeout=10)
    engine = ea.Engine(store=store)
    engine.register("account", AccountBehavior)
    acked: list[tuple[str, int, str]] = []  # (account, revision, event_id)
    failures: collections.Counter[str] = collections.Counter()
    unexpected: list[str] = []
    after_restart = 0
    restarted = asyncio.Event()
    stop = asyncio.Event()

    async def client(number: int) -> None:
        nonlocal after_restart
        k = 0
        while not stop.is_set():
            account = f"acc-{(number + k) % ACCOUNTS}"
            k += 1
            try:
                reply = await engine.send("account", account, Deposit(1), timeout=15)
            except ea.StoreUnavailable:
                failures["StoreUnavailable"] += 1
                await asyncio.sleep(0.05)  # a client backs off while the store is away
                continue
            except Exception as exc:  # anything else is a finding
                failures[type(exc).__name__] += 1
                unexpected.append(repr(exc))
                continue
            (envelope,) = reply.events
            acked.append((account, reply.revision, envelope.event_id))
            if restarted.is_set():
                after_restart += 1

    try:
        async with engine:
            for i in range(ACCOUNTS):
                await engine.send("account", f"acc-{i}", Open(f"owner-{i}"))
            clients = [asyncio.create_task(client(n)) for n in range(CLIENTS)]
            await wait_until(lambda: len(acked) >= 200, timeout=30)
            restart = await asyncio.to_thread(
                subprocess.run, [*cluster(), "restart", "-m", "fast"],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert restart.returncode == 0, restart.stderr
            restarted.set()
            # The same engine carries on once the server is back.
            await wait_until(lambda: after_restart >= 200, timeout=45)
            stop.set()
            await asyncio.gather(*clients)
            states = {
                f"acc-{i}": await engine.get_state("account", f"acc-{i}") for i in range(ACCOUNTS)
            }
    finally:
        stop.set()
        await asyncio.to_thread(ensure_server_running)

    assert failures["StoreUnavailable"] > 0, "the restart was not noticed by any command"
    assert set(failures) == {"StoreUnavailable"}, f"unexpected errors: {unexpected[:3]}"

    check = ea.PostgresStore(DSN, schema=pg_schema)
    try:
        for account, (state, revision) in states.items():
            stream = await check.read_stream(f"account|{account}")
            assert [e.sequence_number for e in stream] == list(range(1, len(stream) + 1))
            assert len({e.event_id for e in stream}) == len(stream)  # nothing written twice
            assert revision == len(stream)
            assert state.balance == len(stream) - 1  # every Deposited is 1, after Opened
        stored = {e.event_id for e in await check.read_all(limit=1_000_000)}
        assert {event_id for _, _, event_id in acked} <= stored  # no acknowledged event lost
        for account, revision, event_id in acked:
            (envelope,) = await check.read_stream(f"account|{account}", revision, revision)
            assert envelope.event_id == event_id
    finally:
        await check.close()
    print(f"\n[restart] acked {len(acked)}, failed {dict(failures)}, after restart {after_restart}")
