"""The library example: the 3-loan limit and one-member-per-copy hold across two entities,
under concurrency, through failures and restarts, and the loans read model agrees."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio
from eventactors_examples.library.app import Library
from eventactors_examples.library.demo import ANN, BOB, CLEAN, DDIA, PATTERNS, run_demo
from eventactors_examples.library.domain import LOAN_LIMIT, Borrow, Lend, Member
from postgres_support import DSN, drop_schema, new_schema_name

import eventactors as ea

pytestmark = pytest.mark.timeout(90)

OpenStore = Callable[[], ea.Store]


@pytest_asyncio.fixture(params=["sqlite", "memory"])
async def open_store(request: pytest.FixtureRequest, tmp_path) -> AsyncIterator[OpenStore]:
    """SQLite (the read model in the same file, exactly once) or MemoryStore (in memory)."""
    if request.param == "sqlite":
        yield lambda: ea.SQLiteStore(tmp_path / "library.db")
    else:
        yield ea.MemoryStore


async def stock(library: Library, copies: int, isbn: str = "isbn-1") -> list[tuple[str, int]]:
    for copy in range(1, copies + 1):
        await library.add_copy(isbn, copy, f"Book {isbn}")
    return [(isbn, copy) for copy in range(1, copies + 1)]


async def book_events(library: Library, isbn: str = "isbn-1", copy: int = 1) -> list[str]:
    book_id = await library.engine.resolve("book", {"isbn": isbn, "copy": copy})
    assert book_id is not None
    return [type(e.event).__name__ async for e in library.engine.events("book", book_id)]


async def assert_read_model_matches_entities(library: Library, emails: list[str]) -> None:
    await library.engine.wait_for_projection("loans")
    rows = await (await library.read_model()).all()
    holders: dict[tuple[str, int], str] = {}
    for email in emails:
        state, _ = await library.member(email)
        loans = {(loan.isbn, loan.copy) for loan in state.loans}
        assert {(r.isbn, r.copy) for r in rows if r.email == email} == loans
        assert len(state.loans) <= LOAN_LIMIT
        for key in loans:
            holder = await library.copy(*key)
            assert holder is not None and holder.held_by == email  # the copy agrees
            holders[key] = email
    assert (
        await (await library.read_model()).lent_copies() == holders
    )  # and no copy is out without a loan


async def test_the_scenario_end_to_end(open_store):
    lines: list[str] = []
    loans = await run_demo(open_store(), out=lines.append)
    transcript = "\n".join(lines)
    assert f"ann borrows {CLEAN}#1 (a 4th loan): REFUSED, loan limit of 3 reached" in transcript
    assert f"(ann's): REFUSED, copy already lent {{'held_by': '{ANN}'}}" in transcript
    assert "read model matches the member entities" in transcript
    assert (
        "rejected  Borrow(isbn='978-0132350884', copy=1)  (loan limit of 3 reached)" in transcript
    )
    assert f"{ANN} at revision  4: Introduction to Algorithms #1; Design Patterns #1;" in transcript
    assert [(r.email, r.isbn, r.copy) for r in loans if r.email == BOB] == [
        (BOB, DDIA, 2),
        (BOB, PATTERNS, 1),
    ]
    assert {r.title for r in loans} >= {"Clean Code", "Design Patterns"}


async def test_the_scenario_on_postgres_keeps_the_read_model_in_memory():
    schema = new_schema_name()
    try:
        lines: list[str] = []
        await run_demo(ea.PostgresStore(DSN, schema=schema), out=lines.append)
        assert "  read model matches the member entities" in lines
        again: list[str] = []  # a new process would rebuild the in-memory model from the log
        await run_demo(ea.PostgresStore(DSN, schema=schema), out=again.append)
        assert "the store holds the library of an earlier run" in again[1]
        assert again[2:] and again[-5:] == lines[-5:]
    finally:
        await drop_schema(schema)


async def test_ten_concurrent_borrows_by_one_member_only_three_succeed(open_store):
    async with Library(open_store()) as library:
        await library.register_member(ANN, "Ann")
        copies = await stock(library, 10)
        results = await asyncio.gather(
            *(library.borrow(ANN, isbn, copy) for isbn, copy in copies), return_exceptions=True
        )
        won = [key for key, r in zip(copies, results, strict=True) if isinstance(r, Member)]
        refused = [r for r in results if isinstance(r, ea.Rejected)]
        assert len(won) == LOAN_LIMIT and len(refused) == 10 - LOAN_LIMIT
        for refusal in refused:
            assert refusal.reason == "loan limit of 3 reached"
            assert len(refusal.meta["loans"]) == LOAN_LIMIT
        for key in copies:  # the refused copies were never lent
            copy = await library.copy(*key)
            assert copy is not None and copy.held_by == (ANN if key in won else "")
        assert [(r.isbn, r.copy) for r in await library.loans_of(ANN)] == won
        await assert_read_model_matches_entities(library, [ANN])


async def test_a_copy_is_lent_to_one_member_even_under_concurrent_borrows(open_store):
    emails = [f"m{i}@example.org" for i in range(10)]
    async with Library(open_store()) as library:
        for email in emails:
            await library.register_member(email, email[:2])
        await stock(library, 1)
        results = await asyncio.gather(
            *(library.borrow(email, "isbn-1", 1) for email in emails), return_exceptions=True
        )
        winners = [e for e, r in zip(emails, results, strict=True) if isinstance(r, Member)]
        assert len(winners) == 1
        for result in results:
            if not isinstance(result, Member):
                assert isinstance(result, ea.Rejected), result
                assert (result.reason, result.meta) == (
                    "copy already lent",
                    {"held_by": winners[0]},
                )
        assert (await library.copy("isbn-1", 1)).held_by == winners[0]
        await assert_read_model_matches_entities(library, emails)


async def test_the_read_model_matches_the_entities_after_a_concurrent_mix(open_store):
    rng = random.Random(6)
    emails = [f"m{i}@example.org" for i in range(5)]
    async with Library(open_store()) as library:
        for email in emails:
            await library.register_member(email, email[:2])
        copies = await stock(library, 4, "isbn-a") + await stock(library, 4, "isbn-b")

        outcomes: Counter[str] = Counter()

        async def visitor(email: str) -> None:  # two per member: they race each other too
            for _ in range(12):
                state, _ = await library.member(email)
                try:
                    if state.loans and rng.random() < 0.4:
                        loan = rng.choice(state.loans)
                        await library.return_book(email, loan.isbn, loan.copy)
                        outcomes["returned"] += 1
                    else:
                        await library.borrow(email, *rng.choice(copies))
                        outcomes["borrowed"] += 1
                except ea.Rejected as refused:
                    outcomes[refused.reason] += 1

        await asyncio.gather(*(visitor(email) for email in emails * 2))
        assert outcomes["borrowed"] and outcomes["returned"] and outcomes["copy already lent"]
        await assert_read_model_matches_entities(library, emails)


async def test_unknown_members_and_copies_are_refused_without_creating_anything(open_store):
    async with Library(open_store()) as library:
        with pytest.raises(ea.Rejected, match="not registered"):
            await library.borrow("nobody@example.org", "isbn-1", 1)
        await library.register_member(ANN, "Ann")
        with pytest.raises(ea.Rejected, match="no such copy"):
            await library.borrow(ANN, "isbn-1", 1)
        assert await library.engine.resolve("book", {"isbn": "isbn-1", "copy": 1}) is None
        with pytest.raises(ea.Rejected, match="not borrowed by this member"):
            await library.return_book(ANN, "isbn-1", 1)
        member_id = await library.member_id(ANN)
        with pytest.raises(ea.Rejected, match="not registered"):  # the member's own rule
            await library.engine.send_by("member", {"email": "x@example.org"}, Borrow("i", 1))
        assert await library.engine.resolve("member", {"email": "x@example.org"}) is None
        assert [e.outcome for e in await library.command_log(ANN)] == [
            ea.ACCEPTED,
            ea.REJECTED,
            ea.REJECTED,
        ]
        assert (await library.member(ANN))[1] == 1 and member_id


async def test_a_restart_recovers_members_copies_and_the_read_model(tmp_path):
    path = tmp_path / "library.db"
    async with Library(ea.SQLiteStore(path)) as library:
        await library.register_member(ANN, "Ann")
        copies = await stock(library, 5)
        for isbn, copy in copies[:3]:
            await library.borrow(ANN, isbn, copy)
        await library.return_book(ANN, *copies[1])
        before = await library.member(ANN)
        rows = await library.loans_of(ANN)
        log = await library.command_log(ANN)
        position = library.engine.projection_status("loans").position
    async with Library(ea.SQLiteStore(path)) as library:
        assert await library.member(ANN) == before
        assert await library.loans_of(ANN) == rows  # not applied twice
        assert library.engine.projection_status("loans").position == position
        assert await library.command_log(ANN) == log
        await library.borrow(ANN, *copies[3])
        with pytest.raises(ea.Rejected, match="loan limit"):  # the limit counts recovered loans
            await library.borrow(ANN, *copies[4])
        await library.register_member(BOB, "Bob")
        with pytest.raises(ea.Rejected, match="copy already lent"):
            await library.borrow(BOB, *copies[0])
        await assert_read_model_matches_entities(library, [ANN, BOB])


class FailingMemberWrites(ea.SQLiteStore):
    """A real SQLite store that refuses the next member append which records a loan."""

    fail_next = False

    async def append(self, persistence_id, records, expected, **extras):  # type: ignore[override]
        if self.fail_next and persistence_id.startswith("member|"):
            self.fail_next = False
            raise ea.StoreUnavailable("injected: the disk went away")
        return await super().append(persistence_id, records, expected, **extras)


async def test_a_failed_member_write_after_the_lend_is_compensated(tmp_path):
    store = FailingMemberWrites(tmp_path / "library.db")
    async with Library(store) as library:
        await library.register_member(ANN, "Ann")
        await stock(library, 1)
        store.fail_next = True
        with pytest.raises(ea.StoreUnavailable, match="injected"):
            await library.borrow(ANN, "isbn-1", 1)
        assert await book_events(library) == ["CopyAdded", "Lent", "TakenBack"]
        assert (await library.copy("isbn-1", 1)).held_by == ""  # taken back
        assert (await library.member(ANN))[0].loans == ()
        log = await library.command_log(ANN)
        assert [(e.command_type.rsplit(".", 1)[-1], e.outcome) for e in log[1:]] == [
            ("Borrow", ea.FAILED),
            ("Reconcile", ea.ACCEPTED),
        ]
        await library.borrow(ANN, "isbn-1", 1)  # and the copy can be borrowed again
        await assert_read_model_matches_entities(library, [ANN])


class SlowLending(ea.SQLiteStore):
    """Holds every `Lent` write until a member command has been logged as timed out."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.member_timed_out = asyncio.Event()

    async def append(self, persistence_id, records, expected, **extras):  # type: ignore[override]
        if any(record.event_type.endswith("Lent") for record in records):
            await self.member_timed_out.wait()
        return await super().append(persistence_id, records, expected, **extras)

    async def record_command(self, command):  # type: ignore[override]
        await super().record_command(command)
        if command.outcome == ea.TIMED_OUT:
            self.member_timed_out.set()


@pytest.mark.parametrize(
    "copy_timeout",
    [None, 5.0],
    ids=["the copy answers too late", "the member's handler is abandoned"],
)
async def test_a_lend_that_outlives_the_borrow_is_compensated(tmp_path, copy_timeout):
    store = SlowLending(tmp_path / "library.db")
    async with Library(store, command_timeout=0.5, copy_timeout=copy_timeout) as library:
        await library.register_member(ANN, "Ann")
        await stock(library, 1)
        with pytest.raises(ea.CommandTimeout):
            await library.borrow(ANN, "isbn-1", 1)
        # The copy finished lending after the member gave up; the compensation, queued behind
        # it in the copy's mailbox, took it back.
        assert await book_events(library) == ["CopyAdded", "Lent", "TakenBack"]
        assert (await library.copy("isbn-1", 1)).held_by == ""
        assert [e.outcome for e in await library.command_log(ANN)][1:] == [
            ea.TIMED_OUT,
            ea.ACCEPTED,
        ]
        await assert_read_model_matches_entities(library, [ANN])


async def test_repair_takes_back_copies_lent_without_a_loan(open_store):
    async with Library(open_store()) as library:
        await library.register_member(ANN, "Ann")
        await stock(library, 2)
        await library.borrow(ANN, "isbn-1", 1)
        # What a crash between the copy's Lent and the member's Borrowed leaves behind:
        await library.engine.send_by("book", {"isbn": "isbn-1", "copy": 2}, Lend(ANN))
        assert await library.repair() == 1
        assert (await library.copy("isbn-1", 2)).held_by == ""
        assert (await library.copy("isbn-1", 1)).held_by == ANN  # a real loan is left alone
        assert await library.repair() == 0
        await assert_read_model_matches_entities(library, [ANN])


def test_the_demo_runs_as_a_module(tmp_path):
    store = str(tmp_path / "library.db")
    command = [sys.executable, "-m", "eventactors_examples.library", "--store", store]
    first = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "loan limit of 3 reached" in first.stdout
    assert "read model matches the member entities" in first.stdout
    again = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "earlier run" in again.stdout
    assert again.stdout.splitlines()[-3:] == first.stdout.splitlines()[-3:]
    app = "eventactors_examples.library.app:build_engine"
    rebuild = [sys.executable, "-m", "eventactors.cli", "rebuild", "loans", "--app", app]
    rebuilt = subprocess.run(
        [*rebuild, "--store", store], capture_output=True, text=True, timeout=60
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "rebuilt 'loans': 21 events handled" in rebuilt.stdout
    after = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert after.stdout == again.stdout  # the replayed read model is the same
    fresh = subprocess.run([*command, "--fresh"], capture_output=True, text=True, timeout=60)
    assert fresh.returncode == 0, fresh.stderr
    assert "earlier run" not in fresh.stdout and "loan limit of 3 reached" in fresh.stdout
