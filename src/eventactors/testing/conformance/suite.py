"""`StoreContract`: every contract class at once, for a store that is a full `ea.Store`."""

from __future__ import annotations

from .command_log_store import CommandLogStoreContract
from .event_store import EventStoreContract
from .identifier_store import IdentifierStoreContract
from .lifecycle import LifecycleContract
from .log_following import LogFollowingContract
from .offset_store import OffsetStoreContract
from .sequence_at import SequenceAtContract
from .snapshot_store import SnapshotStoreContract
from .state_store import StateStoreContract


class StoreContract(
    EventStoreContract,
    LogFollowingContract,
    SequenceAtContract,
    SnapshotStoreContract,
    StateStoreContract,
    OffsetStoreContract,
    CommandLogStoreContract,
    IdentifierStoreContract,
    LifecycleContract,
):
    """The whole store contract: what every backend shipped with eventactors passes.

    Subclass it as `class TestMyStore(StoreContract)` and define an `open_store` fixture
    (see `StoreContractBase`).
    """
