"""`eventactors rebuild`: only the projection named runs, and a rebuild beside an application
that runs the same projection stops with an error instead of corrupting its read model."""

from __future__ import annotations

import asyncio
import textwrap

import pytest
from eventactors_examples.bank.app import build_engine
from eventactors_examples.bank.balances import read_balances
from eventactors_examples.bank.domain import Deposit, Open
from test_cli_inspect import BANK_APP, acli, ok

import eventactors as ea

TWO_PROJECTIONS = """
import eventactors as ea
from eventactors_examples.bank.app import build_engine

SEEN = []


async def audit(envelope):
    SEEN.append(envelope.global_position)


async def build(store):
    engine = await build_engine(store)
    await engine.add_projection("audit", audit)
    await engine.add_projection("mail", audit, partitions=2)
    return engine
"""


@pytest.fixture
def two_projections(tmp_path, monkeypatch) -> str:
    name = f"two_projections_{tmp_path.name}".replace("-", "_")
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(TWO_PROJECTIONS))
    monkeypatch.syspath_prepend(str(tmp_path))
    return f"{name}:build"


async def bank_with_history(path: object, deposits: int) -> None:
    engine = await build_engine(ea.SQLiteStore(path))
    async with engine:
        await engine.send("account", "x1", Open("ann"))
        await engine.send("account", "x2", Open("bob"))
        for first in range(0, deposits, 100):  # concurrent sends share commits
            await asyncio.gather(
                *(
                    engine.send("account", f"x{1 + n % 2}", Deposit(1))
                    for n in range(first, min(deposits, first + 100))
                )
            )
        await engine.wait_for_projection("balances")


async def test_rebuild_runs_only_the_projection_it_rebuilds(tmp_path, capsys, two_projections):
    path = tmp_path / "bank.db"
    await bank_with_history(path, 10)
    out = await ok(capsys, "rebuild", "balances", "--store", str(path), "--app", two_projections)
    assert "rebuilt 'balances': 12 events handled, now at position 12" in out
    store = ea.SQLiteStore(path)
    assert await store.list_offsets() == {"balances": 12}  # audit and mail never ran
    await store.close()
    assert (await read_balances(ea.SQLiteStore(path)))["x1"][1] == 5
    out = await ok(capsys, "rebuild", "mail", "--store", str(path), "--app", two_projections)
    assert "rebuilt 'mail': 12 events handled" in out  # a partitioned one: both partitions
    code, _, err = await acli(
        capsys, "rebuild", "nope", "--store", str(path), "--app", two_projections
    )
    assert code == 1
    assert err == (
        "eventactors rebuild: no projection named 'nope'; the app has 'balances', 'audit', "
        "'mail/slices-0-511', 'mail/slices-512-1023'\n"
    )


async def test_rebuild_beside_the_running_application_stops_with_an_error(tmp_path, capsys):
    path = tmp_path / "live.db"
    await bank_with_history(path, 1600)
    engine = await build_engine(ea.SQLiteStore(path))
    running = asyncio.Event()
    stop = asyncio.Event()

    async def traffic() -> None:
        while not stop.is_set():
            await engine.send("account", "x1", Deposit(1))
            running.set()

    async with engine:
        sending = asyncio.create_task(traffic())
        await running.wait()
        try:
            code, out, err = await acli(
                capsys, "rebuild", "balances", "--store", str(path), "--app", BANK_APP
            )
        finally:
            stop.set()
            await sending
    assert code == 1, out
    assert err.startswith("eventactors rebuild: the offset of projection 'balances' moved to ")
    assert "another process is running the projection. Stop the application" in err
