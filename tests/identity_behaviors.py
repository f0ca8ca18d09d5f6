"""A small lending library addressed by natural identifiers, and the backends the issue-6 tests
run on.

Members are identified by their email, book copies by their ISBN and copy number, and patrons
(a durable-state type) by their card number. Each type's behavior refuses a second
registration, so that a command re-routed to an existing entity is visibly refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from postgres_support import DSN, drop_schema, new_schema_name

import eventactors as ea

# -- backends -------------------------------------------------------------------------------

OpenStore = Callable[[], ea.Store]
BACKENDS = ["memory", "sqlite", "postgres"]


@dataclass(frozen=True)
class Backend:
    """One fresh database. `open()` gives a new store object on it (memory: the same object,
    whose data lives in it), and `child_args` tell identity_child.py where it is."""

    name: str
    open: OpenStore
    child_args: tuple[str, ...] = ()


@asynccontextmanager
async def backend(name: str, tmp_path: Path) -> AsyncIterator[Backend]:
    if name == "memory":
        store = ea.MemoryStore()
        yield Backend(name, lambda: store)
    elif name == "sqlite":
        path = tmp_path / "library.db"
        yield Backend(name, lambda: ea.SQLiteStore(path), ("sqlite", str(path)))
    else:
        schema = new_schema_name()
        try:
            yield Backend(
                name, lambda: ea.PostgresStore(DSN, schema=schema), ("postgres", DSN, schema)
            )
        finally:
            await drop_schema(schema)


def open_child_store(args: list[str]) -> ea.Store:
    """The store a child process opens from `Backend.child_args`."""
    if args[0] == "sqlite":
        return ea.SQLiteStore(args[1])
    return ea.PostgresStore(args[1], schema=args[2])


# -- members: event-sourced, identified by {"email"} ---------------------------------------


class Register(msgspec.Struct, frozen=True):
    email: str
    name: str


class Visit(msgspec.Struct, frozen=True):
    """Registers a guest on first contact, and counts a visit every time: get-or-create."""

    email: str


class ChangeEmail(msgspec.Struct, frozen=True):
    email: str


class Rename(msgspec.Struct, frozen=True):
    name: str


class Registered(msgspec.Struct, frozen=True):
    email: str
    name: str


class Visited(msgspec.Struct, frozen=True):
    pass


class EmailChanged(msgspec.Struct, frozen=True):
    email: str


class Renamed(msgspec.Struct, frozen=True):
    name: str


class Member(msgspec.Struct, frozen=True):
    email: str = ""
    name: str = ""
    visits: int = 0


class MemberBehavior(ea.EventSourcedBehavior[Member]):
    commands = (Register, Visit, ChangeEmail, Rename)
    events = (Registered, Visited, EmailChanged, Renamed)

    def initial_state(self) -> Member:
        return Member()

    def handle_command(self, state: Member, command: Any) -> Any:
        match command:
            case Register(email=email, name=name):
                if state.email:
                    raise ea.Rejected("already registered", meta={"email": state.email})
                if not name:
                    raise ea.Rejected("a member needs a name")
                return Registered(email, name)
            case Visit(email=email):
                return [Visited()] if state.email else [Registered(email, "guest"), Visited()]
            case ChangeEmail(email=email):
                if not state.email:
                    raise ea.Rejected("not registered")
                return None if email == state.email else EmailChanged(email)
            case Rename(name=name):
                # Allowed before registration on purpose: it sets no email, so a creation
                # by Rename leaves the entity without the keys it was sent by.
                return None if name == state.name else Renamed(name)

    def handle_event(self, state: Member, event: Any) -> Member:
        match event:
            case Registered(email=email, name=name):
                return msgspec.structs.replace(state, email=email, name=name)
            case Visited():
                return msgspec.structs.replace(state, visits=state.visits + 1)
            case EmailChanged(email=email):
                return msgspec.structs.replace(state, email=email)
            case Renamed(name=name):
                return msgspec.structs.replace(state, name=name)
        raise AssertionError(event)


def member_keys(state: Member) -> dict[str, Any]:
    return {"email": state.email}


# -- book copies: event-sourced, identified by {"isbn", "copy"} with an int copy -------------


class AddCopy(msgspec.Struct, frozen=True):
    isbn: str
    copy: int
    title: str


class Lend(msgspec.Struct, frozen=True):
    borrower: str


class CopyAdded(msgspec.Struct, frozen=True):
    isbn: str
    copy: int
    title: str


class Lent(msgspec.Struct, frozen=True):
    borrower: str


class BookCopy(msgspec.Struct, frozen=True):
    isbn: str = ""
    copy: int | None = None
    title: str = ""
    borrower: str = ""


class BookCopyBehavior(ea.EventSourcedBehavior[BookCopy]):
    commands = (AddCopy, Lend)
    events = (CopyAdded, Lent)

    def initial_state(self) -> BookCopy:
        return BookCopy()

    def handle_command(self, state: BookCopy, command: Any) -> Any:
        match command:
            case AddCopy(isbn=isbn, copy=copy, title=title):
                if state.isbn:
                    raise ea.Rejected("copy already catalogued")
                return CopyAdded(isbn, copy, title)
            case Lend(borrower=borrower):
                if not state.isbn:
                    raise ea.Rejected("no such copy")
                if state.borrower:
                    raise ea.Rejected("already lent", meta={"borrower": state.borrower})
                return Lent(borrower)

    def handle_event(self, state: BookCopy, event: Any) -> BookCopy:
        match event:
            case CopyAdded(isbn=isbn, copy=copy, title=title):
                return BookCopy(isbn, copy, title)
            case Lent(borrower=borrower):
                return msgspec.structs.replace(state, borrower=borrower)
        raise AssertionError(event)


def copy_keys(state: BookCopy) -> dict[str, Any]:
    return {"isbn": state.isbn, "copy": state.copy}


# -- patrons: durable state, identified by {"card"} -----------------------------------------


class Enroll(msgspec.Struct, frozen=True):
    card: str
    name: str


class ChangeCard(msgspec.Struct, frozen=True):
    card: str


class Patron(msgspec.Struct, frozen=True):
    card: str = ""
    name: str = ""


class PatronBehavior(ea.DurableStateBehavior[Patron]):
    commands = (Enroll, ChangeCard)

    def initial_state(self) -> Patron:
        return Patron()

    def handle_command(self, state: Patron, command: Any) -> Patron:
        match command:
            case Enroll(card=card, name=name):
                if state.card:
                    raise ea.Rejected("already enrolled")
                if not name:
                    raise ea.Rejected("a patron needs a name")
                return Patron(card, name)
            case ChangeCard(card=card):
                if not state.card:
                    raise ea.Rejected("not enrolled")
                return Patron(card, state.name)
        raise AssertionError(command)


def patron_keys(state: Patron) -> dict[str, Any]:
    return {"card": state.card}


def register_library(engine: ea.Engine) -> None:
    """Registers "member", "copy" and "patron" with their identifiers."""
    engine.register("member", MemberBehavior, identifiers=member_keys)
    engine.register("copy", BookCopyBehavior, identifiers=copy_keys)
    engine.register("patron", PatronBehavior, identifiers=patron_keys)


async def streams_of(store: ea.Store, entity_type: str) -> list[str]:
    """The entity ids of the type that have an event stream."""
    prefix = entity_type + "|"
    return [pid[len(prefix) :] for pid in await store.persistence_ids() if pid.startswith(prefix)]
