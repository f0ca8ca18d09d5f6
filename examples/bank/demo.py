"""The bank demo: runs accounts on a store, stops, restarts, and shows the recovery.

Run it with `eventactors demo` (an SQLite file, bank.db) or
`eventactors demo --store postgresql://user@host/db` (PostgreSQL).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import eventactors as ea

from .balances import NAME, add_balances_projection, read_balances
from .domain import Account, Close, Deposit, Open, Withdraw, register

Print = Callable[[str], None]


def _show(account_id: str, state: Account, revision: int) -> str:
    status = "closed" if state.is_closed else "open" if state.is_open else "not opened"
    return (
        f"{account_id:<8} owner={state.owner or '-':<5} balance={state.balance:>6}  "
        f"{status:<10} revision {revision}"
    )


async def run_demo(
    location: str | Path, out: Print = print, *, schema: str = "eventactors"
) -> dict[str, tuple[Account, int]]:
    """Runs the demo on `location` and returns what the second engine recovered."""
    store = ea.open_store(location, schema=schema)
    out(f"eventactors bank demo on {store!r}")
    engine = ea.Engine(store=store)
    register(engine)
    async with engine:
        await add_balances_projection(engine)
        for account_id, owner in (("acc-ann", "ann"), ("acc-bob", "bob"), ("acc-cyd", "cyd")):
            state, _ = await engine.get_state("account", account_id)
            if state.is_open or state.is_closed:
                out(f"  {account_id} exists from an earlier run: {state.owner}, {state.balance}")
                continue
            reply = await engine.send("account", account_id, Open(owner), timeout=5.0)
            out(f"  opened {account_id} for {owner} (revision {reply.revision})")

        # 100 concurrent deposits to one account: the mailbox applies them one at a time.
        replies = await asyncio.gather(
            *(engine.send("account", "acc-ann", Deposit(10), timeout=10.0) for _ in range(100))
        )
        revisions = sorted(reply.revision for reply in replies)
        out(f"  100 concurrent deposits to acc-ann: revisions {revisions[0]}..{revisions[-1]}")
        await engine.send("account", "acc-bob", Deposit(500), timeout=5.0)
        await engine.send("account", "acc-bob", Withdraw(120), timeout=5.0)
        try:
            await engine.send("account", "acc-cyd", Withdraw(1), timeout=5.0)
        except ea.Rejected as refused:
            out(f"  withdraw 1 from acc-cyd refused: {refused.reason} {refused.meta}")
        cyd, _ = await engine.get_state("account", "acc-cyd")
        if cyd.is_open:
            await engine.send("account", "acc-cyd", Close(), timeout=5.0)
            out("  closed acc-cyd")
        status = await engine.wait_for_projection(NAME)
        out(f"  the balances projection is at position {status.position}, lag {status.lag}")

        before = {
            account_id: await engine.get_state("account", account_id)
            for account_id in ("acc-ann", "acc-bob", "acc-cyd")
        }
        out("state before stopping:")
        for account_id, (state, revision) in before.items():
            out("  " + _show(account_id, state, revision))
    out("engine stopped; starting a fresh engine on the same store")

    engine = ea.Engine(store=ea.open_store(location, schema=schema))
    register(engine)
    async with engine:
        after = {account_id: await engine.get_state("account", account_id) for account_id in before}
    out("state recovered from the store:")
    for account_id, (state, revision) in after.items():
        out("  " + _show(account_id, state, revision))
    if after != before:
        raise SystemExit("recovery mismatch: the recovered state differs from the state before")
    out("recovered state matches: every acknowledged event survived the restart")
    read_model = await read_balances(ea.open_store(location, schema=schema))
    out("the balances read model (a table beside the events, kept exactly once):")
    for account_id, (owner, balance, is_open, applied) in sorted(read_model.items()):
        out(f"  {account_id:<8} owner={owner:<5} balance={balance:>6}  "
            f"{'open' if is_open else 'closed':<10} events {applied}")  # fmt: skip
        state, revision = after[account_id]
        if (balance, applied) != (state.balance, revision):
            raise SystemExit(f"read model mismatch for {account_id}")
    out("read model matches the entities")
    return after


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    asyncio.run(run_demo(args[0] if args else "bank.db"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
