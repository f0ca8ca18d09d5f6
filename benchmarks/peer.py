"""The peer: the bank account written the way the `eventsourcing` library (9.5) intends.

An `Aggregate` with `@event` methods, an `Application` whose methods get the aggregate from the
repository, call it and save it. Its aggregate cache is on (AGGREGATE_CACHE_MAXSIZE covers every
account) with fast-forwarding off: this process is the only writer, so a cached aggregate is
always current, and a command costs one insert and no read; that is the library's fastest
correct setting here (with fast-forwarding on, its default, every command also reads the
stream's new events: `peer_fastforward` measures that at one client).
"""

from __future__ import annotations

from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event


class PeerAccount(Aggregate):
    @event("Opened")
    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.balance = 0

    @event("Deposited")
    def deposit(self, amount: int) -> None:
        self.balance += amount


class PeerBank(Application[UUID]):
    def open(self, owner: str) -> UUID:
        account = PeerAccount(owner)
        self.save(account)
        return account.id

    def deposit(self, account_id: UUID, amount: int) -> None:
        account: PeerAccount = self.repository.get(account_id)
        account.deposit(amount)
        self.save(account)

    def balance(self, account_id: UUID) -> int:
        account: PeerAccount = self.repository.get(account_id)
        return account.balance


def cache_environment(accounts: int, *, fastforward: bool = False) -> dict[str, str]:
    return {
        "AGGREGATE_CACHE_MAXSIZE": str(accounts * 2),
        "AGGREGATE_CACHE_FASTFORWARD": "y" if fastforward else "n",
    }
