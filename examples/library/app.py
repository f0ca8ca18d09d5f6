"""The library application: members and book copies on one engine, behind a small facade.

A borrow is validated across two entities without a distributed transaction. The member's
handler checks its loan limit, then awaits the copy's `Lend` (sent with `send_by` to the
copy's natural keys), and only then returns its own `Borrowed` event. The copy's mailbox
makes "lent to one member at a time" hold; the member's mailbox, which waits while its handler
awaits the copy, makes "at most three loans" hold. If the copy refuses, its `Rejected` (reason
and meta) rejects the member's command, and nothing is written for the member.

`eventactors rebuild loans --app eventactors_examples.library.app:build_engine --store library.db`
"""

from __future__ import annotations

import logging
from types import TracebackType

import eventactors as ea

from .domain import (
    AddCopy,
    BookBehavior,
    BookCopy,
    Borrow,
    Lend,
    Member,
    Reconcile,
    Register,
    Return,
    TakeBack,
    bind_desk,
    copy_keys,
    member_keys,
)
from .loans import NAME, LoanRow, LoansView, add_loans_projection

log = logging.getLogger("eventactors_examples.library")

MEMBER_COMMAND_TIMEOUT = 10.0  # a member's whole command, the copy's reply included
CALL_TIMEOUT = 30.0  # how long a caller of the facade waits for any reply


class EngineDesk:
    """The member's way to its copies: commands to the copy's entity, found by its keys."""

    def __init__(self, engine: ea.Engine, timeout: float) -> None:
        self._engine, self._timeout = engine, timeout

    async def lend(self, isbn: str, copy: int, member_email: str) -> None:
        await self._send(isbn, copy, Lend(member_email))

    async def take_back(self, isbn: str, copy: int, member_email: str) -> None:
        await self._send(isbn, copy, TakeBack(member_email))

    async def _send(self, isbn: str, copy: int, command: object) -> None:
        keys = {"isbn": isbn, "copy": copy}
        await self._engine.send_by("book", keys, command, timeout=self._timeout)


def register(
    engine: ea.Engine,
    *,
    command_timeout: float = MEMBER_COMMAND_TIMEOUT,
    copy_timeout: float | None = None,
) -> None:
    """Registers members and book copies. A copy's reply gets half the member's deadline by
    default, so that a slow copy fails the member's command cleanly instead of it being
    abandoned; either way the facade compensates."""
    desk = EngineDesk(engine, timeout=copy_timeout or command_timeout / 2)
    engine.register(
        "member",
        bind_desk(desk),
        identifiers=member_keys,
        command_log=True,  # the audit trail of every borrow and return, refusals included
        command_timeout=command_timeout,
        snapshot_every=100,
    )
    engine.register("book", BookBehavior, identifiers=copy_keys, snapshot_every=100)


async def build_engine(store: ea.Store) -> ea.Engine:
    """The app factory of the `eventactors` command: an engine with the loans projection."""
    engine = ea.Engine(store=store)
    register(engine)
    await add_loans_projection(engine)
    return engine


class Library:
    """Members borrow and return copies; `loans_of` reads the read model."""

    def __init__(
        self,
        store: ea.Store | None = None,
        *,
        command_timeout: float = MEMBER_COMMAND_TIMEOUT,
        copy_timeout: float | None = None,
    ) -> None:
        self.engine = ea.Engine(store=store)
        register(self.engine, command_timeout=command_timeout, copy_timeout=copy_timeout)
        self._view: LoansView | None = None

    async def __aenter__(self) -> Library:
        self._view = await add_loans_projection(self.engine)
        await self.engine.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.engine.stop()

    async def register_member(self, email: str, name: str) -> str:
        """Registers a member under their email; returns the member's entity id."""
        reply = await self.engine.send_by(
            "member", {"email": email}, Register(email, name), timeout=CALL_TIMEOUT
        )
        return reply.entity_id

    async def add_copy(self, isbn: str, copy: int, title: str) -> str:
        """Adds a copy of a book; returns the copy's entity id."""
        keys = {"isbn": isbn, "copy": copy}
        reply = await self.engine.send_by(
            "book", keys, AddCopy(isbn, copy, title), timeout=CALL_TIMEOUT
        )
        return reply.entity_id

    async def borrow(self, email: str, isbn: str, copy: int) -> Member:
        """Lends the copy to the member; `ea.Rejected` at the limit or when the copy is out."""
        member_id = await self.member_id(email)
        try:
            reply = await self.engine.send(
                "member", member_id, Borrow(isbn, copy), timeout=CALL_TIMEOUT
            )
        except ea.Rejected:
            raise  # refused before anything was lent: nothing to undo
        except Exception:
            # The failure window: the copy may be lent while the member's `Borrowed` was never
            # written (its append failed, or its handler ran past command_timeout while the
            # copy was still lending). Compensate with `Reconcile`, a member command: it waits
            # in the member's mailbox behind the failed borrow, reads the member's recovered
            # state, and sends the copy a `TakeBack` only if the member holds no such loan.
            # The copy takes back only from that member, so this is safe to repeat.
            await self.reconcile(email, isbn, copy)
            raise
        state: Member = reply.state
        return state

    async def return_book(self, email: str, isbn: str, copy: int) -> Member:
        """Takes the copy back, then ends the member's loan. If the member's write fails after
        the copy was taken back, the loan stays on the member (conservative: it still counts
        against the limit) until `return_book` is called again, which completes it."""
        member_id = await self.member_id(email)
        reply = await self.engine.send(
            "member", member_id, Return(isbn, copy), timeout=CALL_TIMEOUT
        )
        state: Member = reply.state
        return state

    async def reconcile(self, email: str, isbn: str, copy: int) -> None:
        """Takes the copy back if it is lent to the member without the member's record of it."""
        try:
            member_id = await self.member_id(email)
            await self.engine.send("member", member_id, Reconcile(isbn, copy), timeout=CALL_TIMEOUT)
        except Exception:
            log.warning("could not reconcile %s#%s for %s", isbn, copy, email, exc_info=True)

    async def repair(self) -> int:
        """Reconciles each copy lent (by the book events) to a member whose loans do not list
        it, as a crash between `Lent` and `Borrowed` leaves it; returns how many. A borrow in
        flight is safe: its `Reconcile` waits behind it in the member's mailbox."""
        view = await self.read_model()
        listed = {(row.email, row.isbn, row.copy) for row in await view.all()}
        lent = await view.lent_copies()
        orphans = [(email, *key) for key, email in lent.items() if (email, *key) not in listed]
        for email, isbn, copy in orphans:
            await self.reconcile(email, isbn, copy)
        return len(orphans)

    async def member_id(self, email: str) -> str:
        """The member's entity id; `ea.Rejected("not registered")` for an unknown email.

        Resolving first (rather than `send_by`) keeps commands for unknown emails from
        reaching, and being logged under, a generated id that no member will ever have.
        """
        member_id = await self.engine.resolve("member", {"email": email})
        if member_id is None:
            raise ea.Rejected("not registered", meta={"email": email})
        return member_id

    async def member(self, email: str, *, at_revision: int | None = None) -> tuple[Member, int]:
        """The member's (state, revision), now or as it was at `at_revision` (time travel)."""
        member_id = await self.member_id(email)
        state, revision = await self.engine.get_state(
            "member", member_id, timeout=CALL_TIMEOUT, at_revision=at_revision
        )
        return state, revision

    async def copy(self, isbn: str, copy: int) -> BookCopy | None:
        """The copy's state, or None if the library has no such copy."""
        book_id = await self.engine.resolve("book", {"isbn": isbn, "copy": copy})
        if book_id is None:
            return None
        state: BookCopy = (await self.engine.get_state("book", book_id, timeout=CALL_TIMEOUT))[0]
        return state

    async def command_log(self, email: str) -> list[ea.CommandRecord]:
        """Every command the member's entity handled, with its outcome: the audit trail."""
        return await self.engine.command_log("member", await self.member_id(email))

    async def loans_of(self, email: str) -> list[LoanRow]:
        """The member's loans, with titles, from the read model (see `read_model`)."""
        return await (await self.read_model()).of(email)

    async def read_model(self, *, fresh: bool = True) -> LoansView:
        """The loans read model; `fresh` first waits for the projection to reach every event
        committed so far, so that a caller reads its own writes."""
        if self._view is None:
            raise ea.EngineNotStarted("use `async with Library(...)` first")
        if fresh:
            await self.engine.wait_for_projection(NAME)
        return self._view
