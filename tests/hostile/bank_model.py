"""A pure-Python model of the bank example's accounts, written from its rules, not its code.

Each command either is rejected (with the reason the behavior gives) or moves one account to
a new state and revision. The property tests hold the engine to this model.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from eventactors_examples.bank.domain import Close, Deposit, Open, Withdraw


@dataclass(frozen=True)
class Balance:
    owner: str = ""
    balance: int = 0
    is_open: bool = False
    is_closed: bool = False


@dataclass(frozen=True)
class Refused:
    reason: str


@dataclass
class BankModel:
    accounts: dict[str, tuple[Balance, int]] = field(default_factory=dict)

    def state_of(self, account: str) -> tuple[Balance, int]:
        return self.accounts.get(account, (Balance(), 0))

    def handle(self, account: str, command: object) -> Refused | tuple[Balance, int]:
        """The outcome the rules give; an accepted command also moves the model."""
        state, revision = self.state_of(account)
        outcome = self._decide(account, state, command)
        if isinstance(outcome, Refused):
            return outcome
        self.accounts[account] = (outcome, revision + 1)
        return self.accounts[account]

    @staticmethod
    def _decide(account: str, state: Balance, command: object) -> Refused | Balance:
        if isinstance(command, Open):
            if state.is_open or state.is_closed:
                return Refused("account already exists")
            if not command.owner:
                return Refused("an account needs an owner")
            return replace(state, owner=command.owner, is_open=True)
        if not state.is_open:
            return Refused(f"account {account} is not open")
        if isinstance(command, Deposit | Withdraw) and command.amount <= 0:
            return Refused("amount must be positive")
        if isinstance(command, Deposit):
            return replace(state, balance=state.balance + command.amount)
        if isinstance(command, Withdraw):
            if command.amount > state.balance:
                return Refused("insufficient funds")
            return replace(state, balance=state.balance - command.amount)
        if isinstance(command, Close):
            if state.balance != 0:
                return Refused("balance must be zero to close")
            return replace(state, is_open=False, is_closed=True)
        raise AssertionError(f"no rule for {command!r}")


def as_balance(account: object) -> Balance:
    """The engine's `Account` state, in the model's terms."""
    return Balance(
        account.owner,  # type: ignore[attr-defined]
        account.balance,  # type: ignore[attr-defined]
        account.is_open,  # type: ignore[attr-defined]
        account.is_closed,  # type: ignore[attr-defined]
    )
