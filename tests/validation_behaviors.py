"""Behaviors for the issue-6 tests: an auction whose bids are checked against an external
system the test controls, and a member registry addressed by natural identifiers.

The external system is a `Validator`. Each bid's check becomes a `Validation` the test decides
(accept, reject with a reason and meta, fail with an exception) or leaves hanging, either by
hand, taking it from `Validator.next()`, or automatically through `decide`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
from postgres_support import DSN, drop_schema, new_schema_name

import eventactors as ea

OpenStore = Callable[[], ea.Store]

BACKENDS = ("memory", "sqlite", "postgres")


@asynccontextmanager
async def backend(name: str, tmp_path: Path) -> AsyncIterator[OpenStore]:
    """Empty backing data for one test, and a function opening store objects on it: the same
    object for memory (its data lives in it), a new store on the same file or schema otherwise."""
    if name == "memory":
        store = ea.MemoryStore()
        yield lambda: store
    elif name == "sqlite":
        path = tmp_path / "validation.db"
        yield lambda: ea.SQLiteStore(path)
    else:
        schema = new_schema_name()
        try:
            yield lambda: ea.PostgresStore(DSN, schema=schema)
        finally:
            await drop_schema(schema)


# -- the auction ------------------------------------------------------------------------------


class Bid(msgspec.Struct, frozen=True):
    bidder: str
    amount: int


class BidPlaced(msgspec.Struct, frozen=True):
    bidder: str
    amount: int


class Auction(msgspec.Struct, frozen=True):
    bids: tuple[BidPlaced, ...] = ()
    highest: int = 0


class Validation:
    """One pending check of a bid; the test decides it exactly once, or never."""

    def __init__(self, entity_id: str, state: Auction, command: Bid) -> None:
        self.entity_id = entity_id
        self.state = state
        self.command = command
        self.decision: asyncio.Future[tuple[str, dict[str, Any]] | None] = (
            asyncio.get_running_loop().create_future()
        )

    def accept(self) -> None:
        self.decision.set_result(None)

    def reject(self, reason: str, meta: Mapping[str, Any] | None = None) -> None:
        self.decision.set_result((reason, dict(meta or {})))

    def fail(self, error: BaseException) -> None:
        self.decision.set_exception(error)


class Validator:
    """The external system: records every check, and hands each one to the test (`next()`)
    unless `decide` settles it at once."""

    def __init__(self, decide: Callable[[Validation], None] | None = None) -> None:
        self.decide = decide
        self.pending: asyncio.Queue[Validation] = asyncio.Queue()
        self.started: list[tuple[str, Bid]] = []  # (entity_id, bid), in the order checks began
        self.abandoned: list[tuple[str, Bid]] = []  # checks cancelled before they were decided

    async def check(self, entity_id: str, state: Auction, command: Bid) -> Any:
        validation = Validation(entity_id, state, command)
        self.started.append((entity_id, command))
        if self.decide is not None:
            self.decide(validation)
        else:
            self.pending.put_nowait(validation)
        try:
            return await validation.decision
        except asyncio.CancelledError:
            self.abandoned.append((entity_id, command))
            raise

    async def next(self, timeout: float = 10.0) -> Validation:
        """The next check to decide; fails the test if none starts within `timeout`."""
        return await asyncio.wait_for(self.pending.get(), timeout)


class AuctionBehavior(ea.EventSourcedBehavior[Auction]):
    """A bid is placed only once the validator accepts it; a rejection carries its meta."""

    events = (BidPlaced,)
    commands = (Bid,)
    validator: Validator

    def initial_state(self) -> Auction:
        return Auction()

    async def handle_command(self, state: Auction, command: Bid) -> BidPlaced:
        decision = await type(self).validator.check(self.entity_id, state, command)
        if decision is not None:
            reason, meta = decision
            raise ea.Rejected(reason, meta)
        return BidPlaced(command.bidder, command.amount)

    def handle_event(self, state: Auction, event: BidPlaced) -> Auction:
        return Auction((*state.bids, event), max(state.highest, event.amount))


def auction_behavior(validator: Validator) -> type[AuctionBehavior]:
    """A behavior class bound to this test's validator."""
    return type("Auctioneer", (AuctionBehavior,), {"validator": validator})


def placed(*bids: tuple[str, int]) -> list[BidPlaced]:
    return [BidPlaced(bidder, amount) for bidder, amount in bids]


async def stored_events(engine: ea.Engine, entity_type: str, entity_id: str) -> list[Any]:
    return [envelope.event async for envelope in engine.events(entity_type, entity_id)]


# -- a registry addressed by natural identifiers ------------------------------------------------


class Register(msgspec.Struct, frozen=True):
    email: str
    name: str


class Rename(msgspec.Struct, frozen=True):
    name: str


class Registered(msgspec.Struct, frozen=True):
    email: str
    name: str


class Renamed(msgspec.Struct, frozen=True):
    name: str


class Member(msgspec.Struct, frozen=True):
    email: str = ""
    name: str = ""


class MemberBehavior(ea.EventSourcedBehavior[Member]):
    events = (Registered, Renamed)
    commands = (Register, Rename)

    def initial_state(self) -> Member:
        return Member()

    def handle_command(self, state: Member, command: Any) -> Any:
        match command:
            case Register(email, name):
                if state.email:
                    raise ea.Rejected("already registered", {"email": state.email})
                return Registered(email, name)
            case Rename(name):
                if not state.email:
                    raise ea.Rejected("not registered")
                return Renamed(name)

    def handle_event(self, state: Member, event: Any) -> Member:
        match event:
            case Registered(email, name):
                return Member(email, name)
            case Renamed(name):
                return Member(state.email, name)
        return state


def member_keys(state: Member) -> dict[str, Any]:
    return {"email": state.email}


class Shelve(msgspec.Struct, frozen=True):
    isbn: str
    copy: int


class Shelved(msgspec.Struct, frozen=True):
    isbn: str
    copy: int


class BookCopy(msgspec.Struct, frozen=True):
    isbn: str = ""
    copy: int | None = None


class BookCopyBehavior(ea.EventSourcedBehavior[BookCopy]):
    """Two keys, one of them an int: a library's copy of a book."""

    events = (Shelved,)
    commands = (Shelve,)

    def initial_state(self) -> BookCopy:
        return BookCopy()

    def handle_command(self, state: BookCopy, command: Shelve) -> Shelved | None:
        return None if state.isbn else Shelved(command.isbn, command.copy)

    def handle_event(self, state: BookCopy, event: Shelved) -> BookCopy:
        return BookCopy(event.isbn, event.copy)


def copy_keys(state: BookCopy) -> dict[str, Any]:
    return {"isbn": state.isbn, "copy": state.copy}
