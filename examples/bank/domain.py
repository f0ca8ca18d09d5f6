"""The bank's commands, events, state and behavior: everything the engine needs to know."""

from __future__ import annotations

import msgspec

import eventactors as ea

# -- commands -----------------------------------------------------------------------------


class Open(msgspec.Struct, frozen=True):
    owner: str


class Deposit(msgspec.Struct, frozen=True):
    amount: int


class Withdraw(msgspec.Struct, frozen=True):
    amount: int


class Close(msgspec.Struct, frozen=True):
    pass


# -- events -------------------------------------------------------------------------------


class Opened(msgspec.Struct, frozen=True):
    owner: str


class Deposited(msgspec.Struct, frozen=True):
    amount: int


class Withdrawn(msgspec.Struct, frozen=True):
    amount: int


class Closed(msgspec.Struct, frozen=True):
    pass


# -- state --------------------------------------------------------------------------------


class Account(msgspec.Struct, frozen=True):
    owner: str = ""
    balance: int = 0
    is_open: bool = False
    is_closed: bool = False


class AccountBehavior(ea.EventSourcedBehavior[Account]):
    """An account: amounts are in cents, and the balance never goes below zero."""

    commands = (Open, Deposit, Withdraw, Close)
    events = (Opened, Deposited, Withdrawn, Closed)

    def initial_state(self) -> Account:
        return Account()

    def handle_command(self, state: Account, command: object) -> object:
        match command:
            case Open(owner=owner):
                if state.is_open or state.is_closed:
                    raise ea.Rejected("account already exists", meta={"owner": state.owner})
                if not owner:
                    raise ea.Rejected("an account needs an owner")
                return Opened(owner)
            case Deposit(amount=amount):
                self._require_open(state)
                _require_positive(amount)
                return Deposited(amount)
            case Withdraw(amount=amount):
                self._require_open(state)
                _require_positive(amount)
                if amount > state.balance:
                    raise ea.Rejected(
                        "insufficient funds", meta={"balance": state.balance, "requested": amount}
                    )
                return Withdrawn(amount)
            case Close():
                self._require_open(state)
                if state.balance != 0:
                    raise ea.Rejected(
                        "balance must be zero to close", meta={"balance": state.balance}
                    )
                return Closed()
        raise ea.UnknownCommand(f"{type(command).__qualname__}")  # pragma: no cover - `commands`

    def handle_event(self, state: Account, event: object) -> Account:
        match event:
            case Opened(owner=owner):
                return msgspec.structs.replace(state, owner=owner, is_open=True)
            case Deposited(amount=amount):
                return msgspec.structs.replace(state, balance=state.balance + amount)
            case Withdrawn(amount=amount):
                return msgspec.structs.replace(state, balance=state.balance - amount)
            case Closed():
                return msgspec.structs.replace(state, is_open=False, is_closed=True)
        raise TypeError(f"unexpected event {event!r}")

    def _require_open(self, state: Account) -> None:
        if not state.is_open:
            raise ea.Rejected(f"account {self.entity_id} is not open")


def _require_positive(amount: int) -> None:
    if amount <= 0:
        raise ea.Rejected("amount must be positive", meta={"amount": amount})


def register(engine: ea.Engine) -> None:
    """Registers the bank's entity types on an engine."""
    engine.register("account", AccountBehavior, snapshot_every=100, passivate_after=120.0)
