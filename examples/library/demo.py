"""The library demo: a scripted afternoon at the lending desk, printed as a transcript.

`python -m eventactors_examples.library [--store library.db] [--fresh]`. It shows the loan
limit and a double lend refused with their meta, the loans read model, a member's command log
(the audit trail) and a time-travel query.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import eventactors as ea

from .app import Library
from .domain import Member
from .loans import NAME, LoanRow

Print = Callable[[str], None]
ANN, BOB = "ann@example.org", "bob@example.org"
ALGORITHMS, PATTERNS = "978-0262046305", "978-0201633610"
DDIA, CLEAN = "978-1449373320", "978-0132350884"
TITLES = {
    ALGORITHMS: "Introduction to Algorithms",
    PATTERNS: "Design Patterns",
    DDIA: "Designing Data-Intensive Applications",
    CLEAN: "Clean Code",
}
COPIES = ((ALGORITHMS, 1), (PATTERNS, 1), (DDIA, 1), (DDIA, 2), (CLEAN, 1))


async def run_demo(
    store: ea.Store | str | Path, out: Print = print, *, schema: str = "eventactors"
) -> list[LoanRow]:
    """Runs the scenario on `store`, a store or where one lives (as the bank demo takes it);
    on a store that already holds the scenario, only the report."""
    if not isinstance(store, ea.Store):
        store = ea.open_store(store, schema=schema)
    out(f"eventactors library demo on {store!r}")
    async with Library(store) as library:
        if await library.engine.resolve("member", {"email": ANN}) is None:
            await _scenario(library, out)
        else:
            out("the store holds the library of an earlier run; as it stands (--fresh restarts):")
        return await _report(library, out)


async def _scenario(library: Library, out: Print) -> None:
    out("members and copies")
    for email, name in ((ANN, "Ann"), (BOB, "Bob")):
        out(f"  registered {name} <{email}> as member {await library.register_member(email, name)}")
    await _attempt(out, "Ann registers again", library.register_member(ANN, "Ann"))
    for isbn, copy in COPIES:
        await library.add_copy(isbn, copy, TITLES[isbn])
        out(f"  added copy {isbn}#{copy}  {TITLES[isbn]}")
    out("borrowing: at most 3 loans per member, one member per copy")
    for isbn in (ALGORITHMS, PATTERNS, DDIA):
        await _attempt(out, f"ann borrows {isbn}#1", library.borrow(ANN, isbn, 1))
    await _attempt(out, f"ann borrows {CLEAN}#1 (a 4th loan)", library.borrow(ANN, CLEAN, 1))
    await _attempt(out, f"bob borrows {DDIA}#1 (ann's)", library.borrow(BOB, DDIA, 1))
    await _attempt(out, f"bob borrows {DDIA}#2", library.borrow(BOB, DDIA, 2))
    out("returning")
    await _attempt(out, f"ann returns {PATTERNS}#1", library.return_book(ANN, PATTERNS, 1))
    await _attempt(out, f"bob borrows {PATTERNS}#1", library.borrow(BOB, PATTERNS, 1))
    await _attempt(out, f"ann borrows {CLEAN}#1 again", library.borrow(ANN, CLEAN, 1))


async def _attempt(out: Print, what: str, action: Awaitable[Any]) -> None:
    try:
        result = await action
    except ea.Rejected as refused:
        out(f"  {what}: REFUSED, {refused.reason} {refused.meta or ''}".rstrip())
        return
    if isinstance(result, Member):
        out(f"  {what}: ok, {len(result.loans)} loan(s) now")
    else:
        out(f"  {what}: ok")


async def _report(library: Library, out: Print) -> list[LoanRow]:
    status = await library.engine.wait_for_projection(NAME)
    loans = await (await library.read_model()).all()
    out(f"the loans read model (projection {NAME!r} at {status.position}, lag {status.lag})")
    for row in loans:
        out(f"  {row.name:<4} {row.email:<16} {row.isbn}#{row.copy}  {row.title}")
    for email in (ANN, BOB):  # the read model must say what the entities say
        state, _ = await library.member(email)
        listed = {(row.isbn, row.copy) for row in loans if row.email == email}
        if listed != {(loan.isbn, loan.copy) for loan in state.loans}:
            raise SystemExit(f"read model mismatch for {email}: {listed} vs {state.loans}")
    out("  read model matches the member entities")

    out(f"the command log of {ANN} (the audit trail, refusals included)")
    for entry in await library.command_log(ANN):
        shown = repr(entry.command) if entry.command is not None else entry.command_type
        reason = f"  ({entry.reason})" if entry.reason else ""
        out(f"  revision {entry.revision:>2}  {entry.outcome:<8}  {shown}{reason}")

    now, revision = await library.member(ANN)
    then = min(4, revision)
    past, _ = await library.member(ANN, at_revision=then)
    out("time travel: get_state(at_revision=...) rebuilds the past beside the live entity")
    out(f"  {ANN} at revision {then:>2}: {_titles(past)}")
    out(f"  {ANN} at revision {revision:>2}: {_titles(now)}")
    return loans


def _titles(member: Member) -> str:
    return "; ".join(f"{TITLES.get(loan.isbn, loan.isbn)} #{loan.copy}" for loan in member.loans)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m eventactors_examples.library", description="The library lending demo."
    )
    parser.add_argument(
        "--store",
        default="library.db",
        help="an SQLite file (default: library.db), or a postgresql:// URL (the read model is "
        "then kept in memory)",
    )
    parser.add_argument("--schema", default="eventactors", help="the PostgreSQL schema")
    parser.add_argument("--fresh", action="store_true", help="delete the SQLite file first")
    args = parser.parse_args(argv)
    if args.fresh and "://" not in args.store:
        for suffix in ("", "-wal", "-shm"):
            Path(args.store + suffix).unlink(missing_ok=True)
    asyncio.run(run_demo(args.store, schema=args.schema))
    return 0
