"""Members and book copies: their commands, events, states and behaviors.

A member may hold at most `LOAN_LIMIT` loans; a copy is lent to one member at a time. Each
rule lives in the entity that owns it, and a borrow needs both: the member's handler checks
its limit, then asks the copy (through a `Desk`) and records the loan only once the copy has
agreed. The member's mailbox waits meanwhile, so no other command of that member can slip
between the check and the record.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

import msgspec

import eventactors as ea

LOAN_LIMIT = 3

# -- commands -----------------------------------------------------------------------------


class Register(msgspec.Struct, frozen=True):
    email: str
    name: str


class Borrow(msgspec.Struct, frozen=True):
    isbn: str
    copy: int


class Return(msgspec.Struct, frozen=True):
    isbn: str
    copy: int


class Reconcile(msgspec.Struct, frozen=True):
    """Takes back a copy lent to this member that the member never recorded (see app.py)."""

    isbn: str
    copy: int


class AddCopy(msgspec.Struct, frozen=True):
    isbn: str
    copy: int
    title: str


class Lend(msgspec.Struct, frozen=True):
    member_email: str


class TakeBack(msgspec.Struct, frozen=True):
    member_email: str


# -- events -------------------------------------------------------------------------------


class Registered(msgspec.Struct, frozen=True):
    email: str
    name: str


class Borrowed(msgspec.Struct, frozen=True):
    isbn: str
    copy: int


class Returned(msgspec.Struct, frozen=True):
    isbn: str
    copy: int


class CopyAdded(msgspec.Struct, frozen=True):
    isbn: str
    copy: int
    title: str


class Lent(msgspec.Struct, frozen=True):
    member_email: str


class TakenBack(msgspec.Struct, frozen=True):
    member_email: str


# -- states -------------------------------------------------------------------------------


class Loan(msgspec.Struct, frozen=True, order=True):
    isbn: str
    copy: int


class Member(msgspec.Struct, frozen=True):
    email: str = ""  # "" until registered: the entity holds no natural key yet
    name: str = ""
    loans: tuple[Loan, ...] = ()


class BookCopy(msgspec.Struct, frozen=True):
    isbn: str = ""  # "" until added
    copy: int = 0
    title: str = ""
    held_by: str = ""  # the borrowing member's email, "" while on the shelf


def member_keys(state: Member) -> dict[str, str]:
    return {"email": state.email}


def copy_keys(state: BookCopy) -> dict[str, str | int]:
    return {"isbn": state.isbn, "copy": state.copy}


class Desk(Protocol):
    """How a member reaches book copies: app.py implements it with `send_by` to the copy."""

    async def lend(self, isbn: str, copy: int, member_email: str) -> None: ...

    async def take_back(self, isbn: str, copy: int, member_email: str) -> None: ...


class MemberBehavior(ea.EventSourcedBehavior[Member]):
    """A member: registers once, then borrows (up to the limit) and returns copies.

    `desk` is bound per engine by subclassing (`bind_desk`): behaviors are instantiated by
    the engine without arguments, and the desk needs that engine.
    """

    commands = (Register, Borrow, Return, Reconcile)
    events = (Registered, Borrowed, Returned)
    desk: ClassVar[Desk]

    def initial_state(self) -> Member:
        return Member()

    async def handle_command(self, state: Member, command: object) -> object:
        match command:
            case Register(email=email, name=name):
                if state.email:
                    raise ea.Rejected("already registered", meta={"name": state.name})
                if not email.strip() or not name.strip():
                    raise ea.Rejected("a member needs an email and a name")
                return Registered(email, name)
            case Borrow(isbn=isbn, copy=copy):
                loans = _registered(state).loans
                if Loan(isbn, copy) in loans:
                    raise ea.Rejected("already borrowed", meta={"isbn": isbn, "copy": copy})
                if len(loans) >= LOAN_LIMIT:
                    raise ea.Rejected(
                        f"loan limit of {LOAN_LIMIT} reached",
                        meta={"loans": [f"{loan.isbn}#{loan.copy}" for loan in loans]},
                    )
                # The external check: the copy lends itself or raises the copy's own Rejected
                # (reason and meta unchanged), which rejects this command too.
                await self.desk.lend(isbn, copy, state.email)
                return Borrowed(isbn, copy)
            case Return(isbn=isbn, copy=copy):
                if Loan(isbn, copy) not in _registered(state).loans:
                    raise ea.Rejected(
                        "not borrowed by this member", meta={"isbn": isbn, "copy": copy}
                    )
                await self.desk.take_back(isbn, copy, state.email)
                return Returned(isbn, copy)
            case Reconcile(isbn=isbn, copy=copy):
                if state.email and Loan(isbn, copy) not in state.loans:
                    await self.desk.take_back(isbn, copy, state.email)
                return None  # nothing changes for the member: the log keeps the audit trail
        raise ea.UnknownCommand(type(command).__qualname__)  # pragma: no cover - `commands`

    def handle_event(self, state: Member, event: object) -> Member:
        match event:
            case Registered(email=email, name=name):
                return msgspec.structs.replace(state, email=email, name=name)
            case Borrowed(isbn=isbn, copy=copy):
                return msgspec.structs.replace(state, loans=(*state.loans, Loan(isbn, copy)))
            case Returned(isbn=isbn, copy=copy):
                kept = tuple(loan for loan in state.loans if loan != Loan(isbn, copy))
                return msgspec.structs.replace(state, loans=kept)
        raise TypeError(f"unexpected event {event!r}")


def _registered(state: Member) -> Member:
    if not state.email:
        raise ea.Rejected("not registered")
    return state


def bind_desk(desk: Desk) -> type[MemberBehavior]:
    """A MemberBehavior subclass that reaches copies through `desk` (one per engine)."""

    class LibraryMember(MemberBehavior):
        pass

    LibraryMember.desk = desk
    LibraryMember.__qualname__ = "LibraryMember"  # as error messages name it
    return LibraryMember


class BookBehavior(ea.EventSourcedBehavior[BookCopy]):
    """One physical copy of a book: lent to at most one member at a time."""

    commands = (AddCopy, Lend, TakeBack)
    events = (CopyAdded, Lent, TakenBack)

    def initial_state(self) -> BookCopy:
        return BookCopy()

    def handle_command(self, state: BookCopy, command: object) -> object:
        match command:
            case AddCopy(isbn=isbn, copy=copy, title=title):
                if state.isbn:
                    raise ea.Rejected("copy already exists", meta={"title": state.title})
                if not isbn.strip() or not title.strip() or copy < 1:
                    raise ea.Rejected("a copy needs an isbn, a title and a number >= 1")
                return CopyAdded(isbn, copy, title)
            case Lend(member_email=member):
                if not state.isbn:
                    raise ea.Rejected("no such copy")
                if state.held_by == member:
                    return None  # a retried lend: already this member's, nothing to do
                if state.held_by:
                    raise ea.Rejected("copy already lent", meta={"held_by": state.held_by})
                return Lent(member)
            case TakeBack(member_email=member):
                # Only from the member who holds it; otherwise there is nothing to take back,
                # which makes returns and compensations safe to repeat.
                return TakenBack(member) if state.isbn and state.held_by == member else None
        raise ea.UnknownCommand(type(command).__qualname__)  # pragma: no cover - `commands`

    def handle_event(self, state: BookCopy, event: object) -> BookCopy:
        match event:
            case CopyAdded(isbn=isbn, copy=copy, title=title):
                return msgspec.structs.replace(state, isbn=isbn, copy=copy, title=title)
            case Lent(member_email=member):
                return msgspec.structs.replace(state, held_by=member)
            case TakenBack():
                return msgspec.structs.replace(state, held_by="")
        raise TypeError(f"unexpected event {event!r}")
